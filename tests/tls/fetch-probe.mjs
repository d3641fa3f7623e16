// A Worker of the end-to-end suite only: it proves that workerd, started
// by `wrangler dev` with NODE_EXTRA_CA_CERTS naming the run's throw-away
// CA, trusts the test's HTTPS servers (where the portal fetches Client ID
// Metadata Documents from). `GET /health` answers at once; `GET
// /probe?url=<https url>` fetches the URL and answers what came back, or
// the fetch's error, as JSON.
export default {
  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname === "/health") return Response.json({ status: "ok" });
    if (url.pathname !== "/probe") return new Response("not found", { status: 404 });
    const target = url.searchParams.get("url") ?? "";
    try {
      const reply = await fetch(target);
      return Response.json({ ok: true, status: reply.status, body: (await reply.text()).slice(0, 2000) });
    } catch (e) {
      return Response.json({ ok: false, error: String(e?.message ?? e) });
    }
  },
};
