// Review mode's keyboard (evaluation/review.html): j or → next row, k or ← previous,
// 1–4 the verdict of the current row. Keys typed in the notes (or any field) are left
// alone. One row at a time: next/previous follow the pager's links. As a list: they move
// the current card, whose verdict buttons 1–4 press.
(function () {
  "use strict";

  function cards() {
    return Array.prototype.slice.call(document.querySelectorAll("#review-mode .review-card"));
  }

  function current() {
    return document.querySelector("#review-mode .review-card.current") || cards()[0] || null;
  }

  function move(step) {
    var list = cards();
    var index = list.indexOf(current());
    var next = list[index + step];
    if (!next) return false;
    list.forEach(function (card) { card.classList.remove("current"); });
    next.classList.add("current");
    next.focus({ preventScroll: true });
    next.scrollIntoView({ block: "nearest" });
    return true;
  }

  document.addEventListener("keydown", function (event) {
    if (!document.getElementById("review-mode")) return;
    if (event.altKey || event.ctrlKey || event.metaKey || event.isComposing) return;
    var target = event.target;
    if (target && target.closest && target.closest("textarea, input, select, [contenteditable]")) return;
    var forward = event.key === "j" || event.key === "ArrowRight";
    var backward = event.key === "k" || event.key === "ArrowLeft";
    if (forward || backward) {
      var link = document.getElementById(forward ? "review-next" : "review-prev");
      if (link) {
        event.preventDefault();
        link.click();
      } else if (cards().length > 1 && move(forward ? 1 : -1)) {
        event.preventDefault();
      }
      return;
    }
    if (/^[1-4]$/.test(event.key)) {
      var card = current();
      var button = card && card.querySelector('button[data-key="' + event.key + '"]');
      if (button) {
        event.preventDefault();
        button.click();
      }
    }
  });

  // The card just saved (swapped in with the class "current") is the only current one.
  document.addEventListener("htmx:afterSettle", function (event) {
    var card = event.detail && event.detail.elt;
    if (!card || !card.classList || !card.classList.contains("review-card")) return;
    cards().forEach(function (other) {
      if (other !== card) other.classList.remove("current");
    });
    card.classList.add("current");
  });
})();
