// The test host of the MCP Apps views (bundled by `apps.mjs` with the
// pinned esbuild): the official host-side bridge of
// `@modelcontextprotocol/ext-apps` in a page, a view in a sandboxed iframe
// (scripts only, no same-origin), the tool's input and result fed to it,
// and the view's `tools/call` requests handed to the scenario
// (`window.hostCallTool`, which records them and asks the real server).
import { AppBridge, PostMessageTransport } from "@modelcontextprotocol/ext-apps/app-bridge";

window.showView = async ({ html, toolName, args, result, theme, locale }) => {
  document.documentElement.dataset.theme = theme;
  const wrap = document.getElementById("view");
  wrap.replaceChildren();
  const iframe = document.createElement("iframe");
  iframe.setAttribute("sandbox", "allow-scripts");
  iframe.title = toolName;
  wrap.append(iframe);
  const bridge = new AppBridge(
    null,
    { name: "pmjb-test-host", version: "1.0.0" },
    { serverTools: {}, logging: {} },
    {
      hostContext: {
        theme,
        locale,
        displayMode: "inline",
        availableDisplayModes: ["inline"],
        platform: "web",
        containerDimensions: { maxHeight: 8000 },
        toolInfo: { tool: { name: toolName, inputSchema: { type: "object" } } },
      },
    },
  );
  bridge.oncalltool = async (params) => window.hostCallTool(params);
  bridge.onsizechange = ({ height }) => {
    if (height) iframe.style.height = `${height}px`;
  };
  bridge.onloggingmessage = (params) => console.log("view log", JSON.stringify(params));
  const ready = new Promise((resolve) => {
    bridge.oninitialized = () => resolve();
  });
  await bridge.connect(new PostMessageTransport(iframe.contentWindow, iframe.contentWindow));
  iframe.srcdoc = html;
  await ready;
  await bridge.sendToolInput({ arguments: args });
  await bridge.sendToolResult(result);
  window.currentBridge = bridge;
  return true;
};
