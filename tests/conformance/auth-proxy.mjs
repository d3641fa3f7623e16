// A loopback proxy for the MCP conformance suite, which cannot send an
// Authorization header: it forwards every request to the MCP server with
// the API key added. Test tooling only; the product has no auth-off switch.
// Usage: node auth-proxy.mjs <listen port> <target origin> <api key>
import http from "node:http";

const [port, target, key] = process.argv.slice(2);
const upstream = new URL(target);

http
  .createServer((req, res) => {
    const headers = { ...req.headers, authorization: `Bearer ${key}` };
    // Host and Origin pass through unchanged, so the server's own checks
    // (DNS-rebinding protection) see what the suite sent.
    const forward = http.request(
      { hostname: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers },
      (reply) => {
        res.writeHead(reply.statusCode ?? 502, reply.headers);
        reply.pipe(res);
      },
    );
    forward.on("error", () => {
      res.writeHead(502);
      res.end();
    });
    req.pipe(forward);
  })
  .listen(Number(port), "127.0.0.1", () => console.log(`auth proxy on ${port} -> ${target}`));
