"""The page of ``delfverify.report``: its HTML template with the table's script, and the two plots as inline SVG.

Everything the page needs is inside it (styles, script, data, plots) except the match pictures, which are files in
the folder beside it: it references no network address, font or script from elsewhere.
"""

from __future__ import annotations

import html
import math
from string import Template
from typing import Mapping

import numpy as np

_WIDTH, _HEIGHT = 560, 320
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 12, 34, 46


def _nice_ticks(top: float, count: int = 5) -> list[float]:
    """Round tick values from 0 to at least ``top``."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / count
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 5, 10) if raw <= m * step)
    return [step * i for i in range(int(math.ceil(top / step)) + 1)]


def _text(x: float, y: float, text: str, anchor: str = "middle", size: int = 11, extra: str = "") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}"{extra}>'
            f'{html.escape(text)}</text>')


def _legend(entries: list[tuple[str, str]], x: float, y: float) -> str:
    parts = []
    for number, (name, colour) in enumerate(entries):
        row = y + 15 * number
        parts.append(f'<rect x="{x:.1f}" y="{row - 9:.1f}" width="10" height="10" fill="{colour}"/>'
                     + _text(x + 14, row, name, "start"))
    return "".join(parts)


def histogram_svg(groups: Mapping[str, np.ndarray], colours: Mapping[str, str], top: int, xlabel: str,
                  what: str) -> str:
    """Step histograms of integer counts, one line per group (empty groups left out), counts at or above ``top``
    in the last bin."""
    groups = {name: values for name, values in groups.items() if len(values)}
    bins = top + 1
    counts = {name: np.bincount(np.minimum(values, top).astype(int), minlength=bins) for name, values in groups.items()}
    highest = max((int(c.max()) for c in counts.values()), default=0)
    ticks = _nice_ticks(highest)
    plot_w, plot_h = _WIDTH - _LEFT - _RIGHT, _HEIGHT - _TOP - _BOTTOM
    bin_w = plot_w / bins

    def y_of(value: float) -> float:
        return _TOP + plot_h * (1 - value / ticks[-1])

    parts = [_text(_WIDTH / 2, 18, f"most inliers per prediction, {what}", size=13, extra=' font-weight="bold"')]
    for tick in ticks:
        parts.append(f'<line x1="{_LEFT}" x2="{_WIDTH - _RIGHT}" y1="{y_of(tick):.1f}" y2="{y_of(tick):.1f}" '
                     f'stroke="#e5e5e5"/>' + _text(_LEFT - 6, y_of(tick) + 4, f"{tick:g}", "end"))
    for value in range(0, bins, 10):
        label = f"\u2265{value}" if value == top else str(value)
        parts.append(_text(_LEFT + (value + 0.5) * bin_w, _HEIGHT - _BOTTOM + 16, label))
    parts.append(_text(_LEFT + plot_w / 2, _HEIGHT - 8, xlabel))
    parts.append(_text(14, _TOP + plot_h / 2, "predictions", extra=f' transform="rotate(-90 14 {_TOP + plot_h / 2})"'))
    for name, count in counts.items():
        points = []
        for b, c in enumerate(count):
            points += [f"{_LEFT + b * bin_w:.1f},{y_of(c):.1f}", f"{_LEFT + (b + 1) * bin_w:.1f},{y_of(c):.1f}"]
        parts.append(f'<polyline fill="none" stroke="{colours.get(name, "#333")}" stroke-width="1.6" '
                     f'points="{" ".join(points)}"><title>{html.escape(name)}</title></polyline>')
    parts.append(f'<rect x="{_LEFT}" y="{_TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#888"/>')
    parts.append(_legend([(f"{name} ({len(values):,})", colours.get(name, "#333")) for name, values in groups.items()],
                         _WIDTH - _RIGHT - 150, _TOP + 16))
    return _svg(parts, _WIDTH, _HEIGHT, f"histogram of the most inliers per prediction, {what}")


def scatter_svg(before: np.ndarray, after: np.ndarray, groups: np.ndarray, colours: Mapping[str, str],
                cells: int = 40) -> str:
    """Confidence after against before, binned into ``cells`` x ``cells`` squares (so its size does not grow with
    the rows): each square takes the colour of its most frequent group, and is darker the more rows it holds."""
    side = _HEIGHT - _TOP - _BOTTOM
    width = _LEFT + side + 170
    names = sorted(set(groups.tolist()), key=lambda g: list(colours).index(g) if g in colours else len(colours))
    code = np.array([names.index(g) for g in groups.tolist()], int)
    x = np.clip((before * cells).astype(int), 0, cells - 1)
    y = np.clip((after * cells).astype(int), 0, cells - 1)
    keys, counts = np.unique((x * cells + y) * len(names) + code, return_counts=True) if len(code) else ([], [])
    by_cell: dict[int, tuple[int, int, int]] = {}  # cell -> (rows, count of its top group, top group)
    for key, count in zip(np.asarray(keys).tolist(), np.asarray(counts).tolist()):
        cell, group = divmod(key, len(names))
        rows, best, top = by_cell.get(cell, (0, 0, group))
        by_cell[cell] = (rows + count, max(best, count), group if count > best else top)
    most = max((rows for rows, _, _ in by_cell.values()), default=1)
    size = side / cells
    parts = [_text(width / 2, 18, "confidence after vs before", size=13, extra=' font-weight="bold"')]
    for tick in (0, 0.25, 0.5, 0.75, 1):
        parts.append(_text(_LEFT + tick * side, _TOP + side + 16, f"{tick:g}"))
        parts.append(_text(_LEFT - 6, _TOP + side * (1 - tick) + 4, f"{tick:g}", "end"))
    parts.append(f'<line x1="{_LEFT}" y1="{_TOP + side}" x2="{_LEFT + side}" y2="{_TOP}" stroke="#aaa" '
                 f'stroke-dasharray="4 3"/>')
    for cell, (rows, _, group) in sorted(by_cell.items()):
        cx, cy = divmod(cell, cells)
        opacity = 0.35 + 0.65 * math.log1p(rows) / math.log1p(most)
        parts.append(f'<rect x="{_LEFT + cx * size:.1f}" y="{_TOP + side - (cy + 1) * size:.1f}" width="{size:.1f}" '
                     f'height="{size:.1f}" fill="{colours.get(names[group], "#333")}" fill-opacity="{opacity:.2f}"/>')
    parts.append(f'<rect x="{_LEFT}" y="{_TOP}" width="{side}" height="{side}" fill="none" stroke="#888"/>')
    parts.append(_text(_LEFT + side / 2, _HEIGHT - 8, "old confidence"))
    parts.append(_text(14, _TOP + side / 2, "new confidence", extra=f' transform="rotate(-90 14 {_TOP + side / 2})"'))
    totals = {name: int((code == i).sum()) for i, name in enumerate(names)}
    parts.append(_legend([(f"{name} ({totals[name]:,})", colours.get(name, "#333")) for name in names],
                         _LEFT + side + 16, _TOP + 16))
    return _svg(parts, width, _HEIGHT, "confidence after against before")


def _svg(parts: list[str], width: float, height: float, label: str) -> str:
    return (f'<svg width="{width:.0f}" height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" role="img" '
            f'aria-label="{html.escape(label)}" font-family="sans-serif">{"".join(parts)}</svg>')


PAGE = Template("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1.2em 2em; color: #222; }
h1 { font-size: 1.4em; margin: 0 0 .3em; } nav { font-size: .9em; } h2 { font-size: 1.15em; margin: 1.4em 0 .5em; }
h3 { font-size: 1em; margin: 1em 0 .4em; }
.summary { display: flex; gap: 3em; flex-wrap: wrap; align-items: flex-start; }
.summary table td { padding: 1px 10px 1px 0; } .summary table td:last-child { text-align: right; }
.plots { display: flex; gap: 1.5em; flex-wrap: wrap; }
#controls { margin: .5em 0; display: flex; gap: 1em; align-items: center; flex-wrap: wrap; }
#rows { border-collapse: collapse; font-size: .88em; }
#rows th { position: sticky; top: 0; background: #eee; cursor: pointer; text-align: left; padding: 3px 8px;
           white-space: nowrap; user-select: none; }
#rows td { padding: 2px 8px; border-bottom: 1px solid #eee; white-space: nowrap; }
#rows td.reason, #rows td.why { white-space: normal; max-width: 36em; color: #555; }
#rows td.num { text-align: right; font-variant-numeric: tabular-nums; }
#rows tr[data-status="boosted"] td.status { color: #1a9850; }
#rows tr[data-status="suppressed"] td.status { color: #d73027; }
#rows tr[data-status="error"] td.status { color: #762a83; }
.pictures { display: flex; flex-wrap: wrap; gap: 10px; }
.pictures figure { margin: 0; max-width: 330px; font-size: .8em; }
.pictures img { width: 320px; height: auto; display: block; border: 1px solid #ccc; }
.pictures figure.none { border: 1px dashed #ccc; padding: 6px; color: #555; }
.note { color: #555; font-size: .9em; max-width: 60em; }
</style>
</head>
<body>
<h1>$title</h1>
<nav><a href="#table">predictions</a> &middot; <a href="#pictures">match pictures</a></nav>
<div class="summary">
<div><h2>Rows and work</h2><table>$facts</table></div>
<div style="$score_style"><h2>Against the truth</h2><table>$scores</table></div>
</div>
<h2>Plots</h2>
<div class="plots">$histogram $scatter</div>
<h2 id="table">Predictions</h2>
<div id="controls">
<label>status <select id="status"><option value="">all</option></select></label>
<label>id or label <input id="search" type="search" size="18"></label>
<label id="chosen-box" hidden><input id="chosen" type="checkbox"> chosen candidates only</label>
<button id="prev" type="button">&larr; previous</button><button id="next" type="button">next &rarr;</button>
<span id="info"></span>
</div>
<table id="rows"><thead></thead><tbody></tbody></table>
<p class="note">Click a column to sort by it (again: reversed); $page_rows rows per page. The page also reads
<code>?status=</code>, <code>?q=</code>, <code>?chosen=1</code>, <code>?sort=</code>, <code>?desc=1</code> and
<code>?page=</code> from its address.</p>
<h2 id="pictures">Match pictures</h2>
<p class="note">Up to $per_kind rows of each kind ($kinds), drawn at random with a fixed seed: the query (left)
and its gallery photo with the most inliers (right), inlier matches in green, at most $side pixels wide, recomputed
from the stored features with the run's settings. Pictures stop at $budget MiB in all.</p>
$gallery
<script type="application/json" id="report-data">$data</script>
<script>
(function () {
  "use strict";
  var doc = JSON.parse(document.getElementById("report-data").textContent);
  var columns = doc.columns, data = doc.data, coded = doc.coded, pictures = doc.pictures;
  var n = data.id.length, pageRows = $page_rows;
  var titles = {old: "old conf.", "new": "new conf.", fmr: "false-match rate", picture: "picture"};
  var sortBy = {inliers: "top"};
  var shown = columns.filter(function (c) { return c !== "top"; });
  var params = new URLSearchParams(window.location.search);
  var state = {
    status: params.get("status") || "", q: params.get("q") || "", chosen: params.get("chosen") === "1",
    sort: shown.indexOf(params.get("sort")) >= 0 ? params.get("sort") : "", desc: params.get("desc") === "1",
    page: Math.max(1, parseInt(params.get("page") || "1", 10) || 1)
  };
  var table = document.getElementById("rows"), info = document.getElementById("info");
  var prev = document.getElementById("prev"), next = document.getElementById("next");
  var select = document.getElementById("status"), search = document.getElementById("search");
  var chosen = document.getElementById("chosen");

  var perStatus = coded.status.map(function () { return 0; });
  data.status.forEach(function (s) { perStatus[s] += 1; });
  coded.status.forEach(function (name, code) {
    var option = document.createElement("option");
    option.value = name;
    option.textContent = name + " (" + perStatus[code] + ")";
    select.appendChild(option);
  });
  var relabelled = data.chosen && data.rank && coded.status.indexOf("relabelled") < 0;
  if (relabelled) {  // chosen candidates that are not their query's first: a view, not a status
    var option = document.createElement("option"), count = 0;
    data.chosen.forEach(function (c, i) { count += c && data.rank[i] > 1 ? 1 : 0; });
    option.value = "relabelled";
    option.textContent = "relabelled (" + count + ")";
    select.appendChild(option);
  }
  select.value = state.status;
  search.value = state.q;
  if (data.chosen) {
    document.getElementById("chosen-box").hidden = false;
    chosen.checked = state.chosen;
  }

  function selected() {
    var only = relabelled && state.status === "relabelled";
    var status = state.status && !only ? coded.status.indexOf(state.status) : null;
    var q = state.q.toLowerCase(), rows = [], i;
    for (i = 0; i < n; i += 1) {
      if (status !== null && data.status[i] !== status) { continue; }
      if (only && !(data.chosen[i] && data.rank[i] > 1)) { continue; }
      if (state.chosen && data.chosen && !data.chosen[i]) { continue; }
      if (q && data.id[i].toLowerCase().indexOf(q) < 0 &&
          coded.label[data.label[i]].toLowerCase().indexOf(q) < 0) { continue; }
      rows.push(i);
    }
    if (state.sort) {
      var values = data[sortBy[state.sort] || state.sort], sign = state.desc ? -1 : 1;
      rows.sort(function (a, b) {
        var x = values[a], y = values[b];
        if (x === y) { return a - b; }
        if (x === null) { return 1; }
        if (y === null) { return -1; }
        return x < y ? -sign : sign;
      });
    }
    return rows;
  }

  function fill(td, column, i) {
    var v = data[column][i];
    if (column === "picture") {
      if (v < 0) { return; }
      if (pictures[v][0]) {
        var link = document.createElement("a");
        link.href = pictures[v][0];
        link.textContent = "picture";
        td.appendChild(link);
      } else {
        td.className = "why";
        td.textContent = pictures[v][1];
      }
      return;
    }
    if (coded[column]) { v = coded[column][v]; }
    if (column === "old" || column === "new") { v = v === null ? "" : v.toFixed(4); td.className = "num"; }
    if (column === "fmr") {  // as delfverify.calibration.format_rate writes it
      v = v === null ? "" : v >= 1e-4 ? String(Number((v * 100).toPrecision(2))) + "%" : v.toPrecision(2);
      td.className = "num";
    }
    if (column === "chosen") { v = v ? "\\u2713" : ""; }
    if (column === "rank" || column === "inliers") { td.className = "num"; }
    if (column === "status" || column === "reason") { td.className = column; }
    td.textContent = v;
  }

  function header() {
    var row = document.createElement("tr");
    shown.forEach(function (column) {
      var th = document.createElement("th");
      var mark = state.sort === column ? (state.desc ? " \\u25bc" : " \\u25b2") : "";
      th.textContent = (titles[column] || column) + mark;
      th.addEventListener("click", function () {
        state.desc = state.sort === column ? !state.desc : false;
        state.sort = column;
        state.page = 1;
        render();
      });
      row.appendChild(th);
    });
    table.tHead.replaceChildren(row);
  }

  function render() {
    var rows = selected(), pages = Math.max(1, Math.ceil(rows.length / pageRows));
    state.page = Math.min(state.page, pages);
    var body = document.createElement("tbody"), start = (state.page - 1) * pageRows;
    rows.slice(start, start + pageRows).forEach(function (i) {
      var tr = document.createElement("tr");
      tr.dataset.status = coded.status[data.status[i]];
      tr.dataset.id = data.id[i];
      shown.forEach(function (column) {
        var td = document.createElement("td");
        fill(td, column, i);
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
    table.replaceChild(body, table.tBodies[0]);
    header();
    info.textContent = rows.length + " of " + n + " rows, page " + state.page + " of " + pages;
    prev.disabled = state.page <= 1;
    next.disabled = state.page >= pages;
    document.body.dataset.rows = String(rows.length);
    document.body.dataset.page = String(state.page);
    document.body.dataset.pages = String(pages);
  }

  select.addEventListener("change", function () { state.status = select.value; state.page = 1; render(); });
  search.addEventListener("input", function () { state.q = search.value; state.page = 1; render(); });
  chosen.addEventListener("change", function () { state.chosen = chosen.checked; state.page = 1; render(); });
  prev.addEventListener("click", function () { state.page -= 1; render(); });
  next.addEventListener("click", function () { state.page += 1; render(); });
  render();
  document.body.dataset.ready = "1";
}());
</script>
</body>
</html>
""")
