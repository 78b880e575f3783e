// ingestd's status page, live: every two seconds it asks /api/status.json (the same code as
// the server's own render) and redraws the counts, the hold and the job lists in place.
// Everything from the ledger is set with textContent, never as HTML: names come from an
// untrusted folder. Without JavaScript the page is the same, refreshed by the browser.
"use strict";
(function () {
  var page = document.body.dataset;  // account url, watch folder: set by the server
  var statusUrl = document.querySelector("footer a").getAttribute("href");
  var every = 2000;
  var TOP_FOLDER = "(top folder)";
  var folderSelect = document.getElementById("folder");
  var stateSelect = document.getElementById("state");
  var latest = null;

  // What Python's str.isprintable() refuses (Unicode's "Other" and "Separator" categories, but
  // the space) shown escaped, exactly as the server's files.display() and `ingestd status` do.
  var unprintable = /[\p{C}\p{Z}]/gu;
  function printable(text) {
    if (text === null || text === undefined) return text;
    return String(text).replace(unprintable, function (ch) {
      if (ch === " ") return ch;
      if (ch === "\n") return "\\n";
      if (ch === "\t") return "\\t";
      if (ch === "\r") return "\\r";
      var code = ch.codePointAt(0), hex = code.toString(16);
      return code < 0x100 ? "\\x" + ("0" + hex).slice(-2) : "\\u" + ("000" + hex).slice(-Math.max(4, hex.length));
    });
  }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = printable(text);
    return node;
  }

  function size(n) {
    if (n === null || n === undefined) return "?";
    var units = ["B", "KB", "MB", "GB", "TB"], value = n, i = 0;
    while (value >= 1000 && i < units.length - 1) { value /= 1000; i++; }
    return (i === 0 ? value.toFixed(0) : value.toFixed(1)) + " " + units[i];
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return null;
    seconds = Math.round(seconds);
    var h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
    if (h) return h + " h " + m + " min";
    if (m) return m + " min " + s + " s";
    return s + " s";
  }

  function numbers(job) {
    var parts = [size(job.bytes_sent || 0) + " of " + size(job.size)];
    if (job.speed) parts.push(size(job.speed) + "/s");
    var left = duration(job.seconds_left);
    if (left) parts.push(left + " left");
    return parts.join(" · ");
  }

  function relative(path) {
    var root = page.watchDir || "";
    if (root && path.indexOf(root + "/") === 0) path = path.slice(root.length + 1);
    var cut = path.lastIndexOf("/");
    return { name: path.slice(cut + 1), folder: cut < 0 ? "" : path.slice(0, cut) };
  }

  function shown(job) {
    var folder = folderSelect.value, state = stateSelect.value;
    var where = printable(relative(job.path).folder);
    if (state && job.state !== state) return false;
    if (folder === "/") return where === "";  // the top folder alone
    if (folder && where !== folder && where.indexOf(folder + "/") !== 0) return false;
    return true;
  }

  function jobItem(job) {
    var place = relative(job.path);
    var item = el("li", "job state-" + job.state);
    item.dataset.id = job.id;
    var line = el("div", "line");
    if (job.state === "done" && page.accountUrl && job.hashed_id) {
      var link = el("a", "name", place.name);
      link.href = page.accountUrl + "/medias/" + encodeURIComponent(job.hashed_id);
      link.rel = "noreferrer noopener";
      line.appendChild(link);
    } else {
      line.appendChild(el("span", "name", place.name));
    }
    line.appendChild(document.createTextNode(" "));
    line.appendChild(el("span", "badge", job.state));
    item.appendChild(line);
    var folderLine = place.folder || TOP_FOLDER;
    if (job.state === "done" || job.state === "failed") folderLine += " · " + (job.updated_at || "");
    item.appendChild(el("div", "folder muted", folderLine));
    if (job.state === "uploading" && job.size) {
      var bar = el("div", "bar");
      var pct = Math.min(100, Math.round((job.bytes_sent || 0) * 1000 / job.size) / 10);
      bar.setAttribute("role", "progressbar");
      bar.setAttribute("aria-valuemin", "0");
      bar.setAttribute("aria-valuemax", "100");
      bar.setAttribute("aria-valuenow", String(pct));
      var fill = el("div", "fill");
      fill.style.width = pct + "%";
      bar.appendChild(fill);
      item.appendChild(bar);
      item.appendChild(el("div", "numbers", numbers(job)));
    }
    var reason = job.state === "failed" ? job.error : job.reason;
    if (reason) item.appendChild(el("p", "reason", reason));
    var todo = document.getElementById("recent").dataset["todo" + job.state[0].toUpperCase() + job.state.slice(1)];
    if (todo) item.appendChild(el("p", "todo", todo));
    return item;
  }

  function fillList(id, jobs, emptyText) {
    var list = document.getElementById(id);
    var old = {};
    list.querySelectorAll(".job").forEach(function (node) { old[node.dataset.id] = node; });
    var fresh = document.createDocumentFragment();
    var growing = [];
    jobs.forEach(function (job) {
      var item = jobItem(job);
      var before = old[String(job.id)];
      var oldFill = before && before.querySelector(".fill");
      var newFill = item.querySelector(".fill");
      if (oldFill && newFill) {  // start where the old bar was, then grow (CSS transition)
        growing.push([newFill, newFill.style.width]);
        newFill.style.width = oldFill.style.width;
      }
      fresh.appendChild(item);
    });
    if (!jobs.length) fresh.appendChild(el("li", "empty muted", emptyText));
    list.replaceChildren(fresh);
    growing.forEach(function (pair) {
      pair[0].getBoundingClientRect();  // laid out at the old width first
      pair[0].style.width = pair[1];
    });
  }

  function daemonLine(daemon) {
    if (!daemon.running) return "ingestd is not running: nothing moves until it is started again.";
    return "ingestd is running (since " + (daemon.since || "?") + ").";
  }

  function addFolders(jobs) {
    // A folder that appeared since the page was served joins the filter's choices.
    var have = {};
    Array.prototype.forEach.call(folderSelect.options, function (o) { have[o.value] = true; });
    jobs.forEach(function (job) {
      var folder = printable(relative(job.path).folder) || "/";
      if (have[folder]) return;
      have[folder] = true;
      var option = el("option", null, folder === "/" ? TOP_FOLDER : folder);
      option.value = folder;
      var after = Array.prototype.find.call(folderSelect.options, function (o) {
        return o.value && o.value > folder;
      });
      folderSelect.insertBefore(option, after || null);
    });
  }

  function render(status) {
    latest = status;
    Object.keys(status.counts).forEach(function (state) {
      var node = document.querySelector('.number[data-state="' + state + '"]');
      if (node) node.textContent = status.counts[state];
    });
    var hold = document.getElementById("hold");
    hold.hidden = !status.hold;
    var words = status.hold ? hold.dataset["words" + status.hold.kind.replace(/_(.)/g, function (_, c) { return c.toUpperCase(); }).replace(/^./, function (c) { return c.toUpperCase(); })] : "";
    document.getElementById("hold-words").textContent = words || "";
    document.getElementById("hold-reason").textContent = status.hold ? printable(status.hold.reason) : "";
    var notes = status.notifications || { waiting: 0 };
    document.getElementById("waiting-notifications").hidden = !notes.waiting;
    var line = notes.waiting + " notification(s) waiting to be delivered";
    var kinds = Object.keys(notes.receivers || {});
    if (kinds.length) {
      line += " (" + kinds.map(function (k) { return notes.receivers[k] + " for " + printable(k); }).join(", ") + ")";
    }
    if (notes.last_error) line += "; last error: " + printable(notes.last_error);
    document.getElementById("notifications-line").textContent = notes.waiting ? line : "";
    document.getElementById("daemon").textContent = daemonLine(status.daemon);
    addFolders(status.jobs);
    var jobs = status.jobs.filter(shown);
    var final = { done: true, failed: true };
    fillList("active", jobs.filter(function (j) { return !final[j.state]; }), "Nothing in progress.");
    fillList("recent", jobs.filter(function (j) { return final[j.state]; }), "Nothing yet.");
    var busy = Object.keys(status.counts).filter(function (s) { return status.counts[s] && !final[s]; });
    document.title = "ingestd: " + (busy.map(function (s) { return status.counts[s] + " " + s; }).join(", ") || "idle");
  }

  function lost() {
    document.getElementById("daemon").textContent =
      "The status page cannot reach ingestd right now: what is shown may be out of date.";
  }

  function refresh() {
    fetch(statusUrl, { credentials: "same-origin", cache: "no-store" })
      .then(function (answer) { return answer.ok ? answer.json() : null; })
      .then(function (status) {
        if (status) render(status);
        else lost();
      })
      .catch(lost)
      .then(function () { setTimeout(refresh, every); });
  }

  function filterChanged() {
    var query = new URLSearchParams();
    if (folderSelect.value) query.set("folder", folderSelect.value);
    if (stateSelect.value) query.set("state", stateSelect.value);
    var search = query.toString();
    history.replaceState(null, "", search ? "?" + search : location.pathname);
    if (latest) render(latest);
  }

  folderSelect.addEventListener("change", filterChanged);
  stateSelect.addEventListener("change", filterChanged);
  document.querySelector("#filter button").hidden = true;  // the selects act at once
  setTimeout(refresh, every);
})();
