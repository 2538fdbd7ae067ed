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
