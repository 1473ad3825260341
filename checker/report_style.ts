/**
 * The report page's style sheet.
 *
 * @module
 */

/** The CSS of the report page (inline: the page is self-contained). */
export const REPORT_CSS = `
body{font:13px/1.4 system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
header{display:flex;gap:16px;align-items:baseline;flex-wrap:wrap;padding:8px 16px;background:#fff;border-bottom:1px solid #ddd}
h1{font-size:18px;margin:0}h2{font-size:15px;margin:0 0 4px}small{color:#777;font-weight:normal}
.verdict{font-weight:bold;padding:2px 8px;border-radius:4px}
.ok{color:#176b2c}.bad{color:#b00020}.unk{color:#8a6d00}
.verdict.ok{background:#e3f4e6}.verdict.bad{background:#fde2e4}.verdict.unk{background:#fff3c4}
.jump{margin-left:auto;background:#b00020;color:#fff;padding:4px 10px;border-radius:4px;text-decoration:none;border:0;font:inherit;cursor:pointer}
#overview{position:sticky;top:0;z-index:5;background:#fff;border-bottom:1px solid #ddd;padding:4px 16px 6px}
#overview canvas{display:block;width:100%;height:120px;cursor:crosshair}
.tools{display:flex;gap:6px;align-items:center;flex-wrap:wrap;margin-bottom:4px}
.tools button{font:inherit;padding:1px 8px}.tools .span{color:#555;margin-left:8px}.tools .hint{color:#888;margin-left:auto;font-size:11px}
.cols{display:flex;gap:10px;margin:10px 16px;flex-wrap:wrap}.cols>section{flex:1 1 360px;margin:0}
section{background:#fff;margin:10px 16px;padding:8px 10px;border:1px solid #ddd;border-radius:6px}
#notes ol,#parts ol{margin:0;padding-left:22px;max-height:220px;overflow:auto}
#notes a,#parts a{text-decoration:none;color:#8a5a00;cursor:pointer}#parts a{color:inherit}
#parts li{margin:1px 0}.why li{margin:2px 0}
.legend{padding:0 16px;display:flex;gap:14px;flex-wrap:wrap;align-items:center;color:#555}
.sw{display:inline-block;width:22px;height:11px;border:1px solid #5a8f66;background:#cfe9d5;border-radius:2px;vertical-align:middle;margin-right:4px}
.sw.out{background:#eee;border-color:#bbb}.sw.open{background:#fff3c4;border:1px dashed #8a6d00}
.sw.illegal{background:#fde2e4;border:2px solid #b00020}.sw.witness{border:2px dashed #c01c28;background:#fff}
.sw.note{width:0;border:0;border-left:2px dashed #e09b00;border-radius:0}.sw.gap{background:#f8d0d0;border-color:#f8d0d0}
.part{scroll-margin-top:200px}.part canvas{display:block;width:100%}
.pick button{margin-right:4px}.pick button.on{font-weight:bold;background:#cfe9d5}
.steps{font-family:ui-monospace,monospace;font-size:12px;max-height:320px;overflow:auto}
.steps .st{color:#555;word-break:break-all}.steps .init{list-style:none;color:#555}
.flash{animation:flash 1s 3}@keyframes flash{50%{outline:3px solid #1a5fb4;outline-offset:2px}}
#tip{position:fixed;z-index:9;max-width:560px;background:#222;color:#fff;padding:6px 8px;border-radius:4px;font-size:12px;pointer-events:none;word-break:break-all;white-space:pre-wrap}
`;
