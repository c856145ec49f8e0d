// Paydeck's pages inside Pipedrive (custom panel, custom modal, app settings). Loaded after the
// vendored @pipedrive/app-extensions-sdk UMD build, which defines window.AppExtensionsSDK.
//
// Pipedrive hides a custom UI extension that does not call initialize() within 10 s
// (pipedrive.readme.io/docs/custom-ui-extensions). The SDK needs the `id` query parameter
// Pipedrive put on the iframe URL; "if the URL is modified (e.g. with redirects), then it has
// to be passed manually" (the SDK's README, Initialization). Paydeck's redirects keep `id`;
// pages reached later inside the same iframe (after a form post) read it back from
// sessionStorage.
(async () => {
  const SDK = window.AppExtensionsSDK;
  if (!SDK) return;
  const identifier = pipedriveIdentifier();
  // A panel's height must be 100-750 px (pipedrive.readme.io/docs/custom-ui-extensions-panels).
  const height = Math.min(750, Math.max(100, document.body.scrollHeight + 24));
  const sdk = await new SDK(identifier ? { identifier } : {}).initialize({ size: { height } });
  document.documentElement.dataset.pipedrive = "ready";

  const message = document.querySelector('[role="status"]');
  if (message) sdk.execute(SDK.Command.SHOW_SNACKBAR, { message: message.textContent.trim() });

  // <a data-pipedrive-modal="<custom modal name>" href="...">: open Paydeck's custom modal
  // (app_manifest/pipedrive/app.json custom_modals); OPEN_MODAL takes the modal's id or name
  // as action_id (SDK README, "Custom modal"). If Pipedrive refuses, follow the link instead.
  for (const link of document.querySelectorAll("a[data-pipedrive-modal]")) {
    link.addEventListener("click", async (event) => {
      event.preventDefault();
      try {
        await sdk.execute(SDK.Command.OPEN_MODAL, {
          type: SDK.Modal.CUSTOM_MODAL, action_id: link.dataset.pipedriveModal });
      } catch (err) {
        window.location.href = link.href;
      }
    });
  }
})();

function pipedriveIdentifier() {
  const key = "paydeck.pipedrive.id";
  const fromUrl = new URLSearchParams(window.location.search).get("id");
  try {
    if (fromUrl) window.sessionStorage.setItem(key, fromUrl);
    return fromUrl || window.sessionStorage.getItem(key);
  } catch (err) {
    return fromUrl;  // storage blocked in this iframe
  }
}
