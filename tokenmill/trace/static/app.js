// tokenmill trace page: POST /api/trace, highlight spans in the output, click a span to list its documents.
// All text from the server is inserted with textContent (never innerHTML): outputs and documents are untrusted.
"use strict";
const $ = (id) => document.getElementById(id);
let current = null;

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

async function loadInfo() {
  const r = await fetch("/api/info");
  const info = await r.json();
  $("info").textContent = `${info.dataset}: ${info.tokens.toLocaleString()} tokens in ${info.shards} shards`;
  info.samples.forEach((s, i) => {
    const o = el("option", s.slice(0, 80));
    o.value = String(i);
    $("sample").appendChild(o);
  });
  $("sample").onchange = () => { if ($("sample").value !== "") $("text").value = info.samples[+$("sample").value]; };
}

async function trace() {
  const text = $("text").value;
  $("status").textContent = "tracing…";
  $("status").className = "";
  const r = await fetch("/api/trace", {
    method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({text: text, fuzzy: $("fuzzy").checked}),
  });
  const body = await r.json();
  if (!r.ok) {
    $("status").textContent = `${r.status}: ${body.error}`;
    $("status").className = "error";
    return;
  }
  current = body;
  $("status").textContent = `${body.spans.length} spans, ${body.documents.length} documents`;
  showOutput(body);
  showFuzzy(body.fuzzy || []);
  document.body.dataset.state = "traced";
}

// Split the output at every span boundary; each piece knows the spans covering it.
function showOutput(res) {
  const out = $("output");
  out.replaceChildren();
  const cuts = new Set([0, res.text.length]);
  res.spans.forEach((s) => { cuts.add(s.char_start); cuts.add(s.char_end); });
  const points = [...cuts].sort((a, b) => a - b);
  const rarest = Math.min(...res.spans.map((s) => s.unigram_logprob));
  for (let i = 0; i + 1 < points.length; i++) {
    const [a, b] = [points[i], points[i + 1]];
    const covering = res.spans.filter((s) => s.char_start <= a && s.char_end >= b);
    if (!covering.length) { out.appendChild(document.createTextNode(res.text.slice(a, b))); continue; }
    covering.sort((x, y) => x.unigram_logprob - y.unigram_logprob);
    const m = el("mark", res.text.slice(a, b), "span");
    if (covering[0].unigram_logprob === rarest) m.classList.add("rare");
    m.dataset.span = String(covering[0].id);
    m.title = `${covering[0].count} occurrences in the training data`;
    m.onclick = () => showSpan(covering[0].id);
    out.appendChild(m);
  }
  const list = $("spans");
  list.replaceChildren();
  res.spans.forEach((s) => {
    const li = el("li", `“${s.text}” — ${s.count}×, ${s.tokens} tokens`);
    li.onclick = () => showSpan(s.id);
    list.appendChild(li);
  });
  $("result").hidden = false;
  $("sources").hidden = true;
}

function showSpan(id) {
  const span = current.spans[id];
  document.querySelectorAll("mark.span").forEach((m) => m.classList.toggle("selected", m.dataset.span === String(id)));
  $("sources-title").textContent = `Source documents of “${span.text.slice(0, 60)}” (${span.count} occurrences)`;
  const list = $("documents");
  list.replaceChildren();
  current.documents.filter((d) => d.spans.includes(id)).forEach((d) => {
    const li = el("li", undefined, "doc");
    const a = el("a", d.url || "(no url)");
    if (/^https?:\/\//.test(d.url || "")) { a.href = d.url; a.rel = "noopener noreferrer"; a.target = "_blank"; }
    li.appendChild(a);
    li.appendChild(el("div", `source ${d.source} · id ${d.id} · shard ${d.shard} · BM25 ${d.bm25}`, "meta"));
    d.snippets.filter((s) => s.span === id).forEach((s) => {
      const p = el("div", undefined, "snippet");
      p.append("…" + s.before, el("b", s.match), s.after + "…");
      li.appendChild(p);
    });
    list.appendChild(li);
  });
  $("sources").hidden = false;
  document.body.dataset.state = "span-shown";
}

function showFuzzy(docs) {
  const list = $("fuzzy-docs");
  list.replaceChildren();
  docs.forEach((d) => list.appendChild(el("li", `${d.jaccard.toFixed(2)}  ${d.url}  (${d.source}, id ${d.id})`)));
  $("fuzzy-result").hidden = !docs.length;
}

$("go").onclick = trace;
loadInfo().then(() => {
  const q = new URLSearchParams(location.search).get("q");
  if (q) { $("text").value = q; trace(); }
});
