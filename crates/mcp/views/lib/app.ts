// The runtime every view shares: the MCP Apps protocol towards the host
// (JSON-RPC 2.0 over postMessage, SEP-1865 2026-01-26), the host context
// (theme, locale), the two languages, euro formatting the Dutch way, and
// small DOM helpers that only ever set text, never markup, so nothing in
// the books can become HTML. A view reaches no origin: every tool call
// goes through the host, and no key or token is ever in the view.

export type Json = any;

type Pending = { resolve: (v: Json) => void; reject: (e: Error) => void };

const pending = new Map<number, Pending>();
const listeners = new Map<string, (params: Json) => void>();
let nextId = 1;

function post(message: Json): void {
  window.parent.postMessage(message, "*");
}

/// Sends a request to the host and resolves with its result.
export function request(method: string, params: Json): Promise<Json> {
  const id = nextId++;
  post({ jsonrpc: "2.0", id, method, params });
  return new Promise((resolve, reject) => pending.set(id, { resolve, reject }));
}

function notify(method: string, params: Json): void {
  post({ jsonrpc: "2.0", method, params });
}

window.addEventListener("message", (event: MessageEvent) => {
  // Only the host (the parent window) speaks to a view.
  if (event.source !== window.parent) return;
  const m = event.data;
  if (!m || m.jsonrpc !== "2.0") return;
  if (m.method === undefined && typeof m.id === "number") {
    const p = pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    if (m.error) p.reject(new Error(String(m.error.message ?? "error")));
    else p.resolve(m.result);
    return;
  }
  if (typeof m.method !== "string") return;
  if (m.id !== undefined) {
    // Requests from the host: `ping` and `ui/resource-teardown` need only
    // an empty answer; anything else is not offered.
    if (m.method === "ping" || m.method === "ui/resource-teardown") {
      post({ jsonrpc: "2.0", id: m.id, result: {} });
    } else {
      post({ jsonrpc: "2.0", id: m.id, error: { code: -32601, message: "Method not found" } });
    }
    return;
  }
  listeners.get(m.method)?.(m.params ?? {});
});

// ----- host context: language and theme -----

export type Lang = "nl" | "en";
export let lang: Lang = "nl";
/// The tool whose result the view shows, when the host says so.
export let hostTool: string | null = null;

/// The text in the host's language.
export function t(nl: string, en: string): string {
  return lang === "nl" ? nl : en;
}

function applyContext(ctx: Json): void {
  if (!ctx) return;
  if (typeof ctx.locale === "string") {
    lang = ctx.locale.toLowerCase().startsWith("nl") ? "nl" : "en";
    document.documentElement.lang = lang;
  }
  if (typeof ctx.toolInfo?.tool?.name === "string") hostTool = ctx.toolInfo.tool.name;
  if (ctx.theme === "dark" || ctx.theme === "light") {
    document.documentElement.dataset.theme = ctx.theme;
  }
  const vars = ctx.styles?.variables;
  if (vars && typeof vars === "object") {
    for (const [k, v] of Object.entries(vars)) {
      if (k.startsWith("--") && typeof v === "string") {
        document.documentElement.style.setProperty(k, v);
      }
    }
  }
}

// ----- formatting -----

const euroFormat = new Intl.NumberFormat("nl-NL", { style: "currency", currency: "EUR" });

/// An amount in euros, always the Dutch way (`€ 1.234,56`), whatever the
/// language: the books are Dutch.
export function eur(n: number): string {
  return euroFormat.format(n);
}

export function monthName(period: number, short = false): string {
  const d = new Date(Date.UTC(2024, period - 1, 1));
  return d.toLocaleDateString(lang === "nl" ? "nl-NL" : "en-GB", {
    month: short ? "short" : "long",
    timeZone: "UTC",
  });
}

export function day(iso: string | null | undefined): string {
  if (!iso) return "";
  const d = new Date(`${iso.slice(0, 10)}T00:00:00Z`);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleDateString(lang === "nl" ? "nl-NL" : "en-GB", {
    day: "numeric",
    month: "short",
    year: "numeric",
    timeZone: "UTC",
  });
}

// ----- DOM -----

type Attrs = Record<string, string | number | boolean | ((e: Event) => void) | undefined>;
type Child = Node | string | number | null | undefined | false;

function attach(el: Element, attrs: Attrs, children: Child[]): void {
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    if (typeof v === "function") el.addEventListener(k.replace(/^on/, ""), v);
    // Through the CSSOM: the view's CSP allows no style attribute.
    else if (k === "style") (el as HTMLElement | SVGElement).style.cssText = String(v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === "object" ? c : document.createTextNode(String(c)));
  }
}

/// An HTML element; strings become text nodes, never markup.
export function h(tag: string, attrs: Attrs = {}, ...children: Child[]): HTMLElement {
  const el = document.createElement(tag);
  attach(el, attrs, children);
  return el;
}

/// An SVG element.
export function s(tag: string, attrs: Attrs = {}, ...children: Child[]): SVGElement {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  attach(el, attrs, children);
  return el;
}

/// A figure shown as euros, with the raw number kept for tests and tools.
export function money(n: number, field?: string): HTMLElement {
  const cls = n < 0 ? "num neg" : "num";
  return h("span", { class: cls, "data-field": field, "data-value": n }, eur(n));
}

/// A select whose change calls `onchange` with the chosen value.
export function select(
  label: string,
  id: string,
  options: Array<[string, string]>,
  value: string,
  onchange: (v: string) => void,
): HTMLElement {
  const sel = h("select", { id, onchange: (e: Event) => onchange((e.target as HTMLSelectElement).value) });
  for (const [v, text] of options) {
    const o = h("option", { value: v }, text) as HTMLOptionElement;
    if (v === value) o.selected = true;
    sel.append(o);
  }
  return h("label", { class: "field", for: id }, h("span", {}, label), sel);
}

// ----- tools through the host -----

/// Calls a tool of this server through the host and returns its
/// `structuredContent`; a tool error becomes an exception with its text.
export async function callTool(name: string, args: Json): Promise<Json> {
  const result = await request("tools/call", { name, arguments: args });
  if (result?.isError) {
    const text = result.content?.find((c: Json) => c.type === "text")?.text;
    throw new Error(text ?? t("De opdracht is mislukt.", "The request failed."));
  }
  return result?.structuredContent ?? {};
}

/// The administrations the caller may use, for an administration choice.
export async function administrations(): Promise<Array<[string, string]>> {
  const r = await callTool("list_divisions", {});
  return (r.administrations ?? [])
    .filter((a: Json) => a.connection_status === undefined || a.connection_status !== "refresh_failed")
    .map((a: Json) => [String(a.division_ref ?? a.division), String(a.name)]);
}

/// The administrations for the picker, fetched through the host; `show`
/// gets them when they arrive. Without them the picker shows only the
/// current one, so a failure is no error.
export function withAdministrations(show: (a: Array<[string, string]>) => void): void {
  void administrations().then(show).catch(() => undefined);
}

// ----- start-up -----

export interface Started {
  /// The tool's arguments, as the host passed them.
  args: Json;
  /// The tool's `structuredContent`.
  data: Json;
}

/// Performs the handshake and waits for the tool's input and result. The
/// view renders from these; the size is reported to the host as it changes.
export async function start(
  name: string,
  render: (s: Started) => void,
  rerender: () => void,
): Promise<void> {
  let args: Json = {};
  let data: Json = null;
  let error: string | null = null;
  const main = document.getElementById("app") as HTMLElement;
  listeners.set("ui/notifications/tool-input", (p) => {
    args = p.arguments ?? {};
  });
  listeners.set("ui/notifications/tool-result", (p) => {
    if (p.isError) {
      error = p.content?.find((c: Json) => c.type === "text")?.text ?? "";
      main.replaceChildren(h("p", { class: "error", role: "alert" }, error ?? ""));
      return;
    }
    data = p.structuredContent ?? null;
    if (data) {
      render({ args, data });
      main.removeAttribute("aria-busy");
      main.dataset.ready = "true";
    }
  });
  listeners.set("ui/notifications/host-context-changed", (p) => {
    applyContext(p);
    if (data) rerender();
  });
  const init = await request("ui/initialize", {
    appInfo: { name, version: "1.0.0" },
    appCapabilities: { availableDisplayModes: ["inline"] },
    protocolVersion: "2026-01-26",
  });
  applyContext(init?.hostContext);
  notify("ui/notifications/initialized", {});
  let last = "";
  new ResizeObserver(() => {
    const width = Math.ceil(document.documentElement.scrollWidth);
    const height = Math.ceil(document.documentElement.scrollHeight);
    const now = `${width}x${height}`;
    if (now === last) return;
    last = now;
    notify("ui/notifications/size-changed", { width, height });
  }).observe(document.documentElement);
}

/// A heading, a line under it and the administration choice: what every
/// view starts with. `pick` is called with the chosen administration.
export function header(
  title: string,
  sub: string,
  division: string,
  admins: Array<[string, string]> | null,
  pick: (division: string) => void,
  ...more: HTMLElement[]
): HTMLElement[] {
  return [
    h("h1", {}, title),
    h("p", { class: "sub" }, sub),
    h(
      "div",
      { class: "controls" },
      select(t("Administratie", "Administration"), "division", admins ?? [[division, division]], division, pick),
      ...more,
    ),
  ];
}

/// A labelled figure of the key figures row.
export function kpi(label: string, value: number, field: string): HTMLElement {
  return h("div", { class: "kpi" }, h("span", { class: "label" }, label), money(value, field));
}

/// Runs a view's reload: busy while it runs, a failure shown in place.
export async function busy(main: HTMLElement, work: () => Promise<void>): Promise<void> {
  main.setAttribute("aria-busy", "true");
  try {
    await work();
  } catch (e) {
    failure(main, e);
  } finally {
    main.removeAttribute("aria-busy");
  }
}

/// Shows a failure inside a section (a tool call that did not work).
export function failure(where: HTMLElement, e: unknown): void {
  where.replaceChildren(h("p", { class: "error", role: "alert" }, String((e as Error)?.message ?? e)));
}
