// The compose form's live recipient count: whenever the audience, category or priority
// changes, the form is posted to count.json (nothing is stored) and the count and the reasons
// some contacts are skipped are shown in place. Without JavaScript the 「人数を確認」 button
// does the same by re-rendering the form.
(function () {
  "use strict";
  var form = document.getElementById("compose-form");
  var box = document.getElementById("count-box");
  if (!form || !box) { return; }
  var number = document.getElementById("count-number");
  var skipped = document.getElementById("count-skipped");
  var asked = 0;
  function show(data) {
    skipped.textContent = "";
    if (data.error) {
      number.textContent = "―";
      var li = document.createElement("li");
      li.textContent = data.error;
      skipped.appendChild(li);
      return;
    }
    number.textContent = String(data.recipients);
    Object.keys(data.skipped).forEach(function (reason) {
      var item = document.createElement("li");
      item.textContent = "送らない連絡先 (" + reason + "): " + data.skipped[reason] + " 件";
      skipped.appendChild(item);
    });
  }
  function count() {
    var mine = ++asked;
    var body = new URLSearchParams();
    new FormData(form).forEach(function (value, key) {
      if (typeof value === "string" && ["csrf", "to", "category", "priority"].indexOf(key) >= 0) {
        body.append(key, value);
      }
    });
    fetch(box.getAttribute("data-count-url"), {method: "POST", body: body,
                                                credentials: "same-origin"})
      .then(function (r) {
        if (r.redirected || (r.status !== 200 && r.status !== 422)) { return null; }
        return r.json();
      })
      .then(function (data) { if (data && mine === asked) { show(data); } })
      .catch(function () { /* the button still works */ });
  }
  form.addEventListener("change", function (event) {
    var name = event.target && event.target.name;
    if (name === "to" || name === "category" || name === "priority") { count(); }
  });
  if (form.querySelector("input[name=to]:checked")) { count(); }
}());
