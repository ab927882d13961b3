/**
 * The pages a person sees at /devicelogin. Self-contained (inline CSS, no scripts, no external
 * assets) so that they work offline and from a phone on the same network through a tunnel.
 */

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}

function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)} - Entra ID emulator</title>
<style>
body { font-family: system-ui, sans-serif; background: #f2f2f2; margin: 0; }
main { max-width: 26rem; margin: 3rem auto; background: #fff; padding: 2rem; box-shadow: 0 2px 6px rgba(0,0,0,.2); }
h1 { font-size: 1.5rem; font-weight: 600; margin-top: 0; }
input[type=text] { width: 100%; box-sizing: border-box; font-size: 1.1rem; padding: .5rem; margin: .5rem 0 1rem; }
button { font-size: 1rem; padding: .5rem 1.5rem; margin-right: .5rem; border: 0; cursor: pointer; }
.primary { background: #0067b8; color: #fff; }
.secondary { background: #ccc; }
.error { color: #c00; }
.note { color: #666; font-size: .85rem; margin-top: 2rem; }
code { background: #eee; padding: 0 .25rem; }
</style>
</head>
<body><main>
${body}
<p class="note">Local Entra ID emulator for testing. Nothing here talks to Microsoft.</p>
</main></body>
</html>
`;
}

export function enterCodePage(error?: string, code = ""): string {
  const message = error === undefined ? "" : `<p class="error" role="alert">${escapeHtml(error)}</p>`;
  return page(
    "Enter code",
    `<h1>Enter code</h1>
<p>Enter the code displayed on your app or device.</p>
${message}
<form method="post" action="/devicelogin">
<label for="code">Code</label>
<input type="text" id="code" name="code" value="${escapeHtml(code)}" autocomplete="off" autocapitalize="characters" autofocus required>
<button class="primary" type="submit">Next</button>
</form>`,
  );
}

export interface ConsentView {
  readonly userCode: string;
  readonly clientId: string;
  readonly scopes: readonly string[];
  readonly username: string;
}

export function consentPage(view: ConsentView): string {
  const code = escapeHtml(view.userCode);
  const scopes = view.scopes.map((scope) => `<li><code>${escapeHtml(scope)}</code></li>`).join("\n");
  return page(
    "Are you trying to sign in?",
    `<h1>Are you trying to sign in?</h1>
<p>Application <code>${escapeHtml(view.clientId)}</code> on another device is asking for:</p>
<ul>
${scopes}
</ul>
<p>Only continue if you started this sign-in on a device near you and it shows the code <strong>${code}</strong>.</p>
<form method="post" action="/devicelogin/approve">
<input type="hidden" name="code" value="${code}">
<label for="username">Sign in as</label>
<input type="text" id="username" name="username" value="${escapeHtml(view.username)}">
<button class="primary" type="submit">Approve</button>
<button class="secondary" type="submit" formaction="/devicelogin/decline">Decline</button>
</form>`,
  );
}

export function approvedPage(username: string): string {
  return page(
    "Signed in",
    `<h1>You have signed in</h1>
<p>Signed in as <strong>${escapeHtml(username)}</strong>.</p>
<p>You have signed in to the application on your device. You may now close this window.</p>`,
  );
}

export function declinedPage(): string {
  return page(
    "Sign-in declined",
    `<h1>Sign-in declined</h1>
<p>You declined to sign in to the application on your device. You may now close this window.</p>`,
  );
}

export function errorPage(code: string): string {
  return page(
    "Error",
    `<h1>Error ${escapeHtml(code)}</h1>
<p>This is the emulator's stand-in for Entra's error lookup page. The code is the AADSTS number from <code>error_codes</code>.</p>`,
  );
}
