// BatchChat page helpers. Plain JavaScript, no build step; every page works without it.
"use strict";

// 1. Inline runner drivers: a slice request that failed (network error, 5xx) is asked
//    again after a pause instead of leaving the batch stalled until the page is reloaded.
//    A 4xx (batch deleted, logged out) is final.
document.addEventListener("htmx:afterRequest", (event) => {
  const elt = event.detail.elt;
  const status = event.detail.xhr ? event.detail.xhr.status : 0;
  const transient = status === 0 || status >= 500;
  if (
    event.detail.failed &&
    transient &&
    elt instanceof HTMLElement &&
    elt.classList.contains("driver")
  ) {
    window.setTimeout(() => {
      if (document.body.contains(elt)) window.htmx.trigger(elt, "retry");
    }, 5000);
  }
});

// 2. An upload over the size limit is refused before the server reads it (413); the
//    answer is a message for the page's message region.
document.addEventListener("htmx:beforeSwap", (event) => {
  if (event.detail.xhr && event.detail.xhr.status === 413) {
    const region = document.getElementById("messages");
    if (region) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
      event.detail.target = region;
      event.detail.swapOverride = "innerHTML";
    }
  }
});

// 2a. Polling (docs/pages.md, "Polling"): an element with `data-poll` and
//    hx-trigger="poll" (the batch page's progress section, the list's rows) is asked for
//    every POLL_MIN ms (the pages' pace before backoff existed) while the tab is
//    visible. An answer 204 (nothing changed) doubles the pause, up to POLL_MAX; a
//    change swaps in a new element, which starts again at POLL_MIN. A failed request backs off the same way. A hidden tab asks nothing; it
//    asks at once when it is shown again. 286 swaps in the final state, which has no
//    `data-poll`: polling ends.
const POLL_MIN = 2000;
const POLL_MAX = 10000;
const polls = new WeakMap(); // element -> {delay, timer, due}

function schedulePoll(elt, delay) {
  const state = polls.get(elt) || {};
  window.clearTimeout(state.timer);
  state.delay = delay;
  state.due = false;
  state.timer = window.setTimeout(() => firePoll(elt), delay);
  polls.set(elt, state);
  // Shown in the DOM for the browser tests (and whoever wonders why a page is quiet).
  elt.dataset.pollDelay = String(delay);
  delete elt.dataset.pollWaiting;
}

function firePoll(elt) {
  if (!document.body.contains(elt) || !elt.hasAttribute("data-poll")) return;
  if (document.visibilityState !== "visible") {
    polls.get(elt).due = true; // asked when the tab is shown again
    elt.dataset.pollWaiting = "hidden";
    return;
  }
  window.htmx.trigger(elt, "poll");
}

function startPolls(root) {
  const found = root.matches && root.matches("[data-poll]") ? [root] : [];
  if (root.querySelectorAll) found.push(...root.querySelectorAll("[data-poll]"));
  for (const elt of found) if (!polls.has(elt)) schedulePoll(elt, POLL_MIN);
}

if (window.htmx) {
  window.htmx.onLoad(startPolls);
  document.addEventListener("htmx:afterRequest", (event) => {
    const elt = event.detail.elt;
    if (!(elt instanceof HTMLElement) || !elt.hasAttribute("data-poll")) return;
    if (!document.body.contains(elt)) return; // swapped: the new element polls
    const status = event.detail.xhr ? event.detail.xhr.status : 0;
    if (status >= 400 && status < 500) return; // logged out, deleted: stop
    const state = polls.get(elt) || { delay: POLL_MIN };
    const unchanged = status === 204 || event.detail.failed;
    schedulePoll(elt, unchanged ? Math.min(state.delay * 2, POLL_MAX) : POLL_MIN);
  });
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState !== "visible") return;
    for (const elt of document.querySelectorAll("[data-poll]")) {
      const state = polls.get(elt);
      if (state && state.due) schedulePoll(elt, 0);
    }
  });
}

// 3. Follow-up questions: stream the answer as it is generated.
//    The server sends the answer text in chunks, then "\x1e" and a JSON status:
//    {"ok": true, "position": n} once the turn is stored, or {"ok": false, "error": "..."}.
const STREAM_END = "\x1e";

async function streamFollowUp(form) {
  const textarea = form.querySelector("textarea");
  const button = form.querySelector("button[type=submit]");
  const status = form.querySelector("#ask-status");
  const errorBox = form.querySelector("#ask-error");
  const pending = document.getElementById("pending-turn");
  const output = document.getElementById(form.dataset.output);
  const question = textarea.value.trim();
  if (!question) {
    textarea.setAttribute("aria-invalid", "true");
    textarea.focus();
    return;
  }
  const body = new FormData(form);
  errorBox.textContent = "";
  textarea.removeAttribute("aria-invalid");
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  status.textContent = form.dataset.msgWorking;
  document.getElementById("pending-question").textContent = question;
  output.textContent = "";
  output.setAttribute("aria-busy", "true");
  pending.hidden = false;

  let text = "";
  let result = { ok: false, error: form.dataset.msgFailed };
  try {
    const response = await fetch(form.action, {
      method: "POST",
      body,
      credentials: "same-origin",
      headers: { "X-BatchChat-Stream": "1" },
    });
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
      const end = text.indexOf(STREAM_END);
      output.textContent = end >= 0 ? text.slice(0, end) : text;
    }
    text += decoder.decode();
    const end = text.indexOf(STREAM_END);
    if (end >= 0) result = JSON.parse(text.slice(end + 1));
  } catch (error) {
    result = { ok: false, error: form.dataset.msgFailed };
  }
  output.removeAttribute("aria-busy");
  button.disabled = false;
  button.removeAttribute("aria-busy");
  if (result.ok) {
    // Swap in the stored turn (answer parsed, citation and search results).
    await window.htmx.ajax("GET", form.dataset.transcript, {
      target: "#transcript",
      swap: "outerHTML",
    });
    pending.hidden = true;
    textarea.value = "";
    status.textContent = form.dataset.msgDone;
    const turn = document.getElementById(`turn-${result.position}`);
    if (turn) turn.scrollIntoView({ block: "nearest" });
  } else {
    pending.hidden = true;
    status.textContent = "";
    errorBox.textContent = result.error || form.dataset.msgFailed;
    textarea.focus();
  }
}

document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-stream")) return;
  // Old browsers without streams post the form normally (the server then redirects).
  if (!window.fetch || !window.ReadableStream || !window.TextDecoder || !window.htmx) return;
  event.preventDefault();
  streamFollowUp(form);
});
