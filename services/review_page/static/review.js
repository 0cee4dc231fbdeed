// Reload the page when what it shows changed: a decision was made, a newer correction
// superseded this one, or the images became available. Plain JavaScript, no framework.
(function () {
  var page = document.getElementById("page");
  if (!page) { return; }
  var shown = [page.dataset.decision, page.dataset.superseded, page.dataset.images].join("|");
  function check() {
    fetch(page.dataset.stateUrl, {cache: "no-store"}).then(function (r) { return r.json(); })
      .then(function (s) {
        var now = [s.decision || "", s.superseded_by || "", String(s.images)].join("|");
        var typing = document.activeElement && document.activeElement.tagName === "INPUT";
        if (now !== shown && !typing) { window.location.reload(); }
      }).catch(function () {});
  }
  setInterval(check, 2000);
})();
