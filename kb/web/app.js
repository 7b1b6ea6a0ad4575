// The kb web page: ask (streamed, cited answers over /v1/chat/completions) and search (/v1/search).
// Plain JavaScript, no build step and nothing loaded from elsewhere.
"use strict";

const state = { token: localStorage.getItem("kb-token") || "", model: "kb", messages: [] };
const $ = (id) => document.getElementById(id);

function headers() {
  const h = { "Content-Type": "application/json" };
  if (state.token) h.Authorization = "Bearer " + state.token;
  return h;
}

function showError(message) {
  const el = $("error");
  el.textContent = message || "";
  el.hidden = !message;
}

async function failure(response) {
  try {
    const body = await response.json();
    return (body.error && body.error.message) || response.statusText;
  } catch (e) {
    return response.status + " " + response.statusText;
  }
}

function element(tag, className, text) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text !== undefined) el.textContent = text;
  return el;
}

function pages(first, last) {
  if (!first) return "";
  return first === last || !last ? "p. " + first : "pp. " + first + "-" + last;
}

// File (and the file inside it), then the pages of the quote when known, else of the passage,
// then a slide or sheet range, then the headings.
function where(c) {
  let file = c.path.split("/").pop();
  if (c.member) file += " › " + c.member;
  const parts = [file];
  const q = c.quote && c.quote.page_start ? c.quote : c;
  const p = pages(q.page_start, q.page_end);
  if (p) parts.push(p);
  if (c.locator) parts.push(c.locator);
  if (c.heading && c.heading.length) parts.push(c.heading.join(" > "));
  return parts.join(", ");
}

// The answer text with each [n] turned into a button that opens citation n.
function renderAnswer(el, text, citations) {
  el.replaceChildren();
  const known = new Set((citations || []).map((c) => c.n));
  let last = 0;
  for (const m of text.matchAll(/\[(\d+)\]/g)) {
    el.append(text.slice(last, m.index));
    const n = Number(m[1]);
    const b = element("button", "cite", "[" + n + "]");
    b.type = "button";
    b.dataset.n = String(n);
    b.disabled = !known.has(n);
    b.addEventListener("click", () => toggleCitation(el.closest(".turn"), n));
    el.append(b);
    last = m.index + m[0].length;
  }
  el.append(text.slice(last));
}

function passageWithQuote(c) {
  const p = element("div", "passage");
  const q = c.quote;
  if (q && q.end > q.start) {
    p.append(c.text.slice(0, q.start));
    p.append(element("mark", "", c.text.slice(q.start, q.end)));
    p.append(c.text.slice(q.end));
  } else {
    p.textContent = c.text;
  }
  return p;
}

function renderCitations(turn, citations) {
  const list = element("ol", "citations");
  for (const c of citations) {
    const item = element("li", "citation");
    item.dataset.n = String(c.n);
    const head = element("button", "secondary where", "[" + c.n + "] " + where(c));
    head.type = "button";
    head.title = c.path;
    head.addEventListener("click", () => toggleCitation(turn, c.n));
    item.append(head);
    if (c.quote) item.append(element("div", "quote", "“" + c.quote.text.split(/\s+/).join(" ") + "”"));
    const passage = passageWithQuote(c);
    passage.hidden = true;
    item.append(passage);
    list.append(item);
  }
  turn.append(list);
}

function toggleCitation(turn, n) {
  const item = turn.querySelector('.citation[data-n="' + n + '"]');
  if (!item) return;
  const passage = item.querySelector(".passage");
  passage.hidden = !passage.hidden;
  item.classList.toggle("open", !passage.hidden);
  if (!passage.hidden) item.scrollIntoView({ block: "nearest" });
}

// Server-sent events from a fetch response: calls onData with each parsed `data:` payload.
async function readEvents(response, onData) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
      if (data && data !== "[DONE]") onData(JSON.parse(data));
    }
  }
}

async function ask(question) {
  showError("");
  const turn = element("div", "turn");
  turn.append(element("div", "you", question));
  const rewrite = element("div", "rewrite");
  rewrite.hidden = true;
  const answer = element("div", "answer thinking", "Searching the documents…");
  turn.append(rewrite, answer);
  $("conversation").append(turn);
  state.messages.push({ role: "user", content: question });
  let text = "";
  let final = null;
  const response = await fetch("/v1/chat/completions", {
    method: "POST",
    headers: headers(),
    body: JSON.stringify({ model: state.model, messages: state.messages, stream: true }),
  });
  if (!response.ok) {
    state.messages.pop();
    answer.remove();
    throw new Error(await failure(response));
  }
  await readEvents(response, (event) => {
    if (event.error) throw new Error(event.error.message);
    if (event.kb && event.kb.rewrite && event.kb.rewrite.how !== "as asked") {
      rewrite.textContent = "Searched for: " + event.kb.rewrite.standalone;
      rewrite.hidden = false;
    }
    const delta = event.choices && event.choices[0] && event.choices[0].delta;
    if (delta && delta.content) {
      text += delta.content;
      answer.classList.remove("thinking");
      renderAnswer(answer, text, []);
    }
    if (event.kb && event.kb.citations) final = event.kb;
  });
  if (!final) throw new Error("the answer stopped before it was complete");
  answer.classList.remove("thinking");
  answer.classList.toggle("refused", final.refused);
  renderAnswer(answer, text, final.citations);
  if (final.note && !final.refused) turn.append(element("div", "note", final.note));
  if (final.citations.length) renderCitations(turn, final.citations);
  if (final.refused && final.closest.length) {
    turn.append(element("div", "note", "Closest passages (not enough to answer):"));
    renderCitations(turn, final.closest);
  }
  state.messages.push({ role: "assistant", content: text });
}

async function search(query) {
  showError("");
  const response = await fetch("/v1/search", {
    method: "POST",
    headers: headers(),
    body: JSON.stringify({ query: query, k: 10 }),
  });
  if (!response.ok) throw new Error(await failure(response));
  const data = await response.json();
  const list = $("results");
  list.replaceChildren();
  if (!data.hits.length) list.append(element("li", "muted", "No passages found."));
  for (const h of data.hits) {
    const item = element("li", "hit");
    const place = element("div", "where", where(h));
    place.title = h.path;
    item.append(place);
    item.append(element("div", "muted", "score " + h.score.toFixed(3)));
    item.append(element("div", "passage", h.text));
    list.append(item);
  }
}

function busy(button, on) {
  button.disabled = on;
}

function init() {
  for (const tab of document.querySelectorAll(".tab")) {
    tab.addEventListener("click", () => {
      for (const t of document.querySelectorAll(".tab")) t.classList.toggle("active", t === tab);
      $("panel-ask").hidden = tab.dataset.tab !== "ask";
      $("panel-search").hidden = tab.dataset.tab !== "search";
    });
  }
  $("ask-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const q = $("question").value.trim();
    if (!q) return;
    $("question").value = "";
    busy($("ask-button"), true);
    try {
      await ask(q);
    } catch (err) {
      showError(err.message);
    } finally {
      busy($("ask-button"), false);
      $("question").focus();
    }
  });
  $("new-conversation").addEventListener("click", () => {
    state.messages = [];
    $("conversation").replaceChildren();
  });
  $("search-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    busy($("search-button"), true);
    try {
      await search($("query").value.trim());
    } catch (err) {
      showError(err.message);
    } finally {
      busy($("search-button"), false);
    }
  });
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    state.token = $("token").value.trim();
    localStorage.setItem("kb-token", state.token);
    showError("");
  });
  fetch("/health")
    .then((r) => r.json())
    .then((h) => {
      state.model = h.name;
      $("kb-name").textContent = h.name;
      $("token-form").hidden = !h.auth;
      $("token").value = state.token;
    })
    .catch(() => showError("the server does not answer"));
}

init();
