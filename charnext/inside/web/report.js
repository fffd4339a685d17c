
(function () {
  var info = document.getElementById("info"), last = null;
  function show(e) {
    var t = e.target;
    if (t.tagName !== "SPAN" || !t.title) return;
    if (last) last.classList.remove("on");
    t.classList.add("on"); last = t;
    info.textContent = t.title; info.classList.add("shown");
  }
  function hide() {
    if (last) last.classList.remove("on");
    last = null; info.classList.remove("shown");
  }
  document.querySelectorAll(".heat").forEach(function (h) {
    h.addEventListener("mouseover", show);
    h.addEventListener("click", function (e) { e.stopPropagation(); show(e); });
    h.addEventListener("mouseleave", hide);
  });
  document.addEventListener("click", hide);
})();
