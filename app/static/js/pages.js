// Behaviour every Paydeck page shares. No inline script anywhere: the pages' CSP is
// script-src 'self' (app/views/common.py crm_frame_headers).

// <form data-confirm="Question?">: ask before submitting.
document.addEventListener("submit", (event) => {
  const form = event.target;
  const question = form instanceof HTMLFormElement ? form.dataset.confirm : undefined;
  if (question && !window.confirm(question)) event.preventDefault();
});
