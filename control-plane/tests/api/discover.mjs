// Discovery with the official MCP TypeScript SDK, as an MCP client does it.
// usage: node discover.mjs <authorization-server-url> <mcp-url>...
// Prints {"prm": {<mcp-url>: <metadata>}, "as": <metadata>} as JSON.
import { pathToFileURL } from 'node:url';
import path from 'node:path';

const nodeDir = process.env.PORTCULLIS_NODE_DIR;
const auth = await import(pathToFileURL(path.join(nodeDir, 'node_modules/@modelcontextprotocol/sdk/dist/esm/client/auth.js')).href);

const [asUrl, ...mcpUrls] = process.argv.slice(2);
const out = { prm: {}, as: null };
for (const url of mcpUrls) {
  out.prm[url] = await auth.discoverOAuthProtectedResourceMetadata(url);
}
out.as = await auth.discoverAuthorizationServerMetadata(asUrl);
console.log(JSON.stringify(out));
