// The initial contact match's progress bar: polls the page's small JSON status endpoint while
// the run reads or applies, and reloads the page once it has finished (no websockets; no
// inline script: the CSP is script-src 'self').
(() => {
  const box = document.getElementById("match-progress");
  if (!box || !["reading", "applying"].includes(box.dataset.status)) return;
  const url = box.dataset.statusUrl;
  const field = (name) => box.querySelector(`[data-field="${name}"]`);
  const poll = async () => {
    try {
      const answer = await fetch(url, { credentials: "omit", cache: "no-store" });
      if (!answer.ok) return;
      const state = await answer.json();
      if (field("status")) field("status").textContent = state.status;
      const a = state.apply || {};
      const finished = (a.done || 0) + (a.failed || 0);
      if (field("bar")) { field("bar").max = a.total || 1; field("bar").value = finished; }
      if (field("applied")) field("applied").textContent = `${finished} of ${a.total || 0}`;
      if (field("failed")) field("failed").textContent = `${a.failed || 0}`;
      if (!["reading", "applying"].includes(state.status)) { window.location.reload(); return; }
    } catch (error) {
      // The next poll tries again.
    }
    window.setTimeout(poll, 2000);
  };
  window.setTimeout(poll, 2000);
})();
