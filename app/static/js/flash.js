// A page that shows a one-off message (`?m=...` after a form: post/redirect/get) takes it out
// of the address, so reloading, bookmarking or sharing the page does not repeat a message
// about a change that has already happened. No inline script: the CSP is script-src 'self'.
(() => {
  const url = new URL(window.location.href);
  if (!url.searchParams.has("m")) return;
  url.searchParams.delete("m");
  window.history.replaceState(window.history.state, "", url.pathname + url.search + url.hash);
})();

// The summary of a form's errors takes the focus, so a screen reader reads it first.
document.addEventListener("DOMContentLoaded", () => {
  const summary = document.getElementById("error-summary");
  if (summary) summary.focus();
});
