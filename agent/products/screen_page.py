"""A reference scale screen served at ``GET /screen?scale=<name>`` by the candidates endpoint.

Plain HTML + a few lines of JavaScript, no external assets: it polls ``/candidates/<scale>`` (404 once the tray
was emptied: the list is cleared), shows one button per candidate (name, price, total), "none of these", and a PLU field for products not shown, and posts the
choice to ``/confirm``. Real screens use the same two calls (or the local bus); this page shows how.
"""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Scale</title>
<style>
body{font-family:system-ui,sans-serif;margin:1rem;background:#f6f6f4}
h1{font-size:1.3rem;margin:.2rem 0}#weight{font-size:2.4rem;font-weight:700}
.c{display:block;width:100%;margin:.4rem 0;padding:.9rem;font-size:1.2rem;text-align:left;border:1px solid #bbb;
border-radius:.5rem;background:#fff}.c small{color:#666}#none{background:#eee}#msg{margin-top:1rem;color:#064}
</style></head><body>
<h1 id="scale"></h1><div id="weight">–</div><div id="list"></div>
<button class="c" id="none">None of these</button>
<form id="other"><input id="plu" placeholder="PLU" size="8"> <button>Confirm PLU</button></form>
<div id="msg"></div>
<script>
const scale = new URLSearchParams(location.search).get("scale") || "";
document.getElementById("scale").textContent = "Scale " + scale;
let current = null;
async function confirm(plu) {
  if (!current) return;
  const r = await fetch("/confirm", {method: "POST", headers: {"Content-Type": "application/json"},
                                     body: JSON.stringify({weighing_id: current.weighing_id, plu: plu})});
  const body = await r.json();
  document.getElementById("msg").textContent = r.ok ? ("Recorded: " + (body.name || body.plu || "none") +
      (body.total != null ? "  total " + body.total.toFixed(2) : "")) : (body.message || "error");
}
function render(p) {
  current = p;
  document.getElementById("weight").textContent = p.weight_kg.toFixed(3) + " kg";
  const list = document.getElementById("list"); list.innerHTML = "";
  for (const c of p.candidates) {
    const b = document.createElement("button"); b.className = "c";
    const qty = c.unit === "piece" ? " × " + c.quantity : "";
    b.innerHTML = (c.name || c.plu) + " <small>" + (c.unit_price != null ? c.unit_price.toFixed(2) + " / " + c.unit +
                  qty + " — " + c.total.toFixed(2) : "PLU " + c.plu) + "</small>";
    b.onclick = () => confirm(c.plu); list.appendChild(b);
  }
}
document.getElementById("none").onclick = () => confirm(null);
document.getElementById("other").onsubmit = (e) => { e.preventDefault();
  const v = document.getElementById("plu").value.trim(); if (v) confirm(v); };
async function poll() {
  try {
    const r = await fetch("/candidates/" + encodeURIComponent(scale));
    if (r.ok) { const p = await r.json(); if (!current || p.weighing_id !== current.weighing_id) render(p); }
    else if (r.status === 404 && current) {  // the tray was emptied: no stale choices for the next customer
      current = null; document.getElementById("weight").textContent = "–";
      document.getElementById("list").innerHTML = ""; }
  } catch (e) {}
  setTimeout(poll, 500);
}
poll();
</script></body></html>
"""
