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

  sessionRenewal(sdk, SDK, identifier);

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

// Sessions that do not die. A page's token lives 15 minutes (settings 30: <body
// data-expires-at>, epoch seconds). Shortly before that, a page nobody is typing into renews
// itself: the SDK's GET_SIGNED_TOKEN gives a fresh JWT signed by Pipedrive (SDK README,
// "Get signed token"; it answers { token }), and the page reloads through Paydeck's
// JWT-verified entry for the same view (/pipedrive/panel/deal?selectedIds=..., the review
// modal, the settings surface), which checks the user and the record again and mints a fresh
// page token. A page already refused (the styled "This view has expired" page, #renew) does
// the same at once. At most one renewal every 30 s, so a refused entry cannot loop.
const RENEW_EARLY_S = 60;
const RENEW_GAP_MS = 30000;
const RENEW_KEY = "paydeck.pipedrive.renewed-at";

function sessionRenewal(sdk, SDK, identifier) {
  const expired = document.getElementById("renew");
  if (expired) {
    const go = () => renew(sdk, SDK, identifier, expired.dataset.renewUrl, true);
    for (const button of expired.querySelectorAll("[data-renew]")) button.addEventListener("click", go);
    if (expired.dataset.renewAuto === "1") renew(sdk, SDK, identifier, expired.dataset.renewUrl, false);
    return;
  }
  const expiresAt = Number(document.body.dataset.expiresAt || 0);
  const entry = entryFor(window.location.pathname);
  if (!expiresAt || !entry) return;
  let dirty = false;  // a form someone is filling in is never reloaded under them
  document.addEventListener("input", () => { dirty = true; });
  const due = () => Date.now() / 1000 >= expiresAt - RENEW_EARLY_S;
  const check = () => { if (!dirty && due()) renew(sdk, SDK, identifier, entry, false); };
  // Timers sleep in background tabs: check again whenever the page is seen.
  window.setTimeout(check, Math.max(0, (expiresAt - RENEW_EARLY_S) * 1000 - Date.now()));
  document.addEventListener("visibilitychange", check);
  window.addEventListener("focus", check);
  // A form sent after its token died would be refused: renew first (the form is lost either
  // way; a fresh page is better than a refusal).
  document.addEventListener("submit", (event) => {
    if (Date.now() / 1000 >= expiresAt - 5) {
      event.preventDefault();
      renew(sdk, SDK, identifier, entry, true);
    }
  }, true);
}

// The JWT-verified entry of the page at `path` (app/ui_auth.py pipedrive_entry says the same).
function entryFor(path) {
  const [, ui, kind, id] = path.split("/");
  if (ui !== "ui") return null;
  if (kind === "review") return "/pipedrive/modal/review";
  if (kind === "settings") return "/pipedrive/settings";
  const panel = { deal: "deal", company: "organization" }[kind];
  return panel && /^[0-9]{1,20}$/.test(id) ? `/pipedrive/panel/${panel}?selectedIds=${id}` : null;
}

async function renew(sdk, SDK, identifier, entry, asked) {
  const last = Number(readStorage(RENEW_KEY) || 0);
  if (!asked && Date.now() - last < RENEW_GAP_MS) return;  // just renewed, and refused again
  writeStorage(RENEW_KEY, String(Date.now()));
  let token;
  try {
    ({ token } = await sdk.execute(SDK.Command.GET_SIGNED_TOKEN));
  } catch (err) {
    return;  // Pipedrive would not sign: the page says "reopen the card"
  }
  if (!token) return;
  const url = new URL(entry, window.location.origin);
  url.searchParams.set("token", token);
  if (identifier) url.searchParams.set("id", identifier);
  document.documentElement.dataset.pipedrive = "renewing";
  window.location.replace(url.toString());
}

function readStorage(key) {
  try { return window.sessionStorage.getItem(key); } catch (err) { return null; }
}

function writeStorage(key, value) {
  try { window.sessionStorage.setItem(key, value); } catch (err) { /* storage blocked */ }
}
