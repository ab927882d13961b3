// The benchmark's reference: the minimal device code script a developer would otherwise write,
// after msal-node's own device code sample (acquireTokenByDeviceCode with a callback that prints
// the message), run on Node. Configuration comes from the environment so the bench can point it
// at the local emulator: AUTHORITY (https://host:port/tenant), CLIENT_ID, and NODE_EXTRA_CA_CERTS.
import { PublicClientApplication } from "@azure/msal-node";

const authority = process.env.AUTHORITY;
const pca = new PublicClientApplication({
  auth: {
    clientId: process.env.CLIENT_ID,
    authority,
    knownAuthorities: [new URL(authority).host],
  },
});

const result = await pca.acquireTokenByDeviceCode({
  scopes: ["User.Read"],
  deviceCodeCallback: (response) => console.error(response.message),
});
console.log(JSON.stringify({ account: result.account?.username, expiresOn: result.expiresOn }));
