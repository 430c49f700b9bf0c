"use strict";
// Draws each tract's section from the JSON the page embeds. Everything in that JSON came from a
// log and is untrusted: it only ever becomes text nodes (textContent, never HTML), and attributes
// are set only to names and numbers this script chooses.
(() => {
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const PAGE = 100;
  const SVG = "http://www.w3.org/2000/svg";

  function el(tag, className, ...children) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  function svg(tag, attributes, ...children) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
    for (const child of children) node.append(child instanceof Node ? child : String(child));
    return node;
  }

  const number = (value) => (typeof value === "number" ? value.toLocaleString("en-US") : String(value));
  const short = (hash) => (hash ? String(hash).slice(0, 12) : "none");
  const pretty = (value) => JSON.stringify(value, null, 2);
  const oneLine = (text, width) => {
    const folded = String(text).replace(/\s+/g, " ").trim();
    return folded.length > width ? folded.slice(0, width - 1) + "…" : folded;
  };

  function badge(text, kind) {
    return el("span", "badge badge-" + kind, text);
  }

  function markerBadges(commit) {
    return commit.markers.map((marker) =>
      badge(marker === "EDIT" && commit.response_to ? "EDIT of " + short(commit.response_to) : marker,
        "marker marker-" + marker.toLowerCase()));
  }

  function cutNote(commit, hash) {
    if (commit.text_length <= commit.text.length) return null;
    return el("p", "note", "Cut to " + number(commit.text.length) + " of " + number(commit.text_length) +
      " characters: `tract show DIR " + short(hash) + "` prints it whole.");
  }

  function field(list, name, value) {
    list.append(el("dt", null, name), el("dd", null, value));
  }

  function commitBody(tract, hash) {
    const commit = tract.commits[hash];
    const body = el("div", "commit-body");
    const facts = el("dl", "facts");
    field(facts, "commit", el("code", null, hash));
    field(facts, "position", number(commit.position));
    field(facts, "created", commit.created_at);
    field(facts, "branch", commit.branch);
    field(facts, "operation", commit.operation);
    field(facts, "type", commit.content_type);
    field(facts, "tokens", number(commit.token_count));
    field(facts, "priority", commit.priority);
    field(facts, "parent", el("code", null, commit.parent_hash || "none"));
    if (commit.merge_parent) field(facts, "merged parent", el("code", null, commit.merge_parent));
    if (commit.response_to) field(facts, "responds to", el("code", null, commit.response_to));
    if (commit.message) field(facts, "message", commit.message);
    if (commit.tool_names.length) field(facts, "tools called", commit.tool_names.join(", "));
    body.append(facts, el("pre", "text", commit.text), cutNote(commit, hash) || "");
    body.append(el("h4", null, "Generation config"),
      commit.generation_config ? el("pre", "json", pretty(commit.generation_config)) : el("p", "note", "none recorded"));
    if (commit.config_history.length) {
      const history = el("ol", "config-history");
      for (const record of commit.config_history) {
        history.append(el("li", null, record.source + " at " + record.created_at + " (position " + record.position + "): ",
          el("code", null, JSON.stringify(record.generation_config))));
      }
      body.append(el("h4", null, "Config history"), history);
    }
    body.append(el("h4", null, "Usage"));
    if (commit.usage.length) {
      const table = el("table", "usage");
      table.append(el("thead", null, el("tr", null, ...["", "prompt", "completion", "total", "cache read", "reasoning",
        "provider", "recorded"].map((name) => el("th", null, name)))));
      const rows = el("tbody");
      for (const usage of commit.usage) {
        rows.append(el("tr", null, el("td", null, usage.role), el("td", "number", number(usage.prompt_tokens)),
          el("td", "number", number(usage.completion_tokens)), el("td", "number", number(usage.total_tokens)),
          el("td", "number", usage.cache_read_tokens === null ? "" : number(usage.cache_read_tokens)),
          el("td", "number", usage.reasoning_tokens === null ? "" : number(usage.reasoning_tokens)),
          el("td", null, usage.provider || ""), el("td", null, usage.created_at)));
      }
      table.append(rows);
      body.append(table);
    } else {
      body.append(el("p", "note", "none recorded for this commit"));
    }
    if (commit.metadata) body.append(el("h4", null, "Metadata"), el("pre", "json", pretty(commit.metadata)));
    return body;
  }

  // A <details> whose body is drawn the first time it is opened (a long page stays light).
  function lazyDetails(className, summary, draw) {
    const details = el("details", className, el("summary", null, ...summary));
    let drawn = false;
    details.addEventListener("toggle", () => {
      if (details.open && !drawn) {
        drawn = true;
        details.append(draw());
      }
    });
    return details;
  }

  function pager(rows, drawRow, startAtEnd, what) {
    const box = el("div", "pager");
    const list = el("div", "rows");
    const label = el("span", "page-label");
    const pages = Math.max(1, Math.ceil(rows.length / PAGE));
    let page = startAtEnd ? pages - 1 : 0;
    const buttons = {};
    const controls = el("div", "controls");
    for (const [name, text] of [["first", "« first"], ["previous", "‹ previous"], ["next", "next ›"], ["last", "last »"]]) {
      buttons[name] = el("button", null, text);
      buttons[name].type = "button";
      controls.append(buttons[name]);
    }
    controls.append(label);
    function show() {
      list.replaceChildren();
      const first = page * PAGE;
      for (const row of rows.slice(first, first + PAGE)) list.append(...drawRow(row));
      label.textContent = rows.length ? " " + what + " " + number(first + 1) + "–" + number(Math.min(first + PAGE, rows.length)) +
        " of the " + number(rows.length) + " shown (page " + (page + 1) + " of " + pages + ")" : " none";
      buttons.first.disabled = buttons.previous.disabled = page === 0;
      buttons.next.disabled = buttons.last.disabled = page === pages - 1;
    }
    buttons.first.addEventListener("click", () => { page = 0; show(); });
    buttons.previous.addEventListener("click", () => { page = Math.max(0, page - 1); show(); });
    buttons.next.addEventListener("click", () => { page = Math.min(pages - 1, page + 1); show(); });
    buttons.last.addEventListener("click", () => { page = pages - 1; show(); });
    show();
    box.append(controls, list);
    return box;
  }

  function truncationNote(shown, total, what) {
    if (shown >= total) return null;
    return el("p", "note truncated", "Showing the newest " + number(shown) + " of " + number(total) + " " + what +
      ": the page holds at most " + number(data.limits.commits_shown) + ". The log has them all (`tract log DIR -n all`, " +
      "`tract compile DIR`).");
  }

  function counts(tract) {
    const box = el("div", "counts");
    const shown = [["records", "records"], ["commits", "commits"], ["in_head_history", "in HEAD's history"],
      ["messages", "messages in the context"], ["tokens", "context tokens"], ["branches", "branches"],
      ["skipped", "skipped"], ["edits", "edits"], ["merges", "merges"], ["usage_records", "usage records"],
      ["prompt_tokens", "prompt tokens (API)"], ["completion_tokens", "completion tokens (API)"]];
    for (const [key, label] of shown) {
      const item = el("div", "count", el("span", "value", number(tract.counts[key])), el("span", "label", label));
      item.dataset.count = key;
      box.append(item);
    }
    return box;
  }

  function branches(tract) {
    const table = el("table", "branches");
    table.append(el("thead", null, el("tr", null, ...["", "branch", "head", "commits"].map((name) => el("th", null, name)))));
    const rows = el("tbody");
    for (const branch of tract.branches) {
      rows.append(el("tr", branch.current ? "current" : null, el("td", null, branch.current ? "*" : ""),
        el("td", "branch-name", branch.name), el("td", null, el("code", null, short(branch.head))),
        el("td", "number", number(branch.commit_count))));
    }
    table.append(rows);
    return table;
  }

  function legend(x, y, items) {
    const group = svg("g", {});
    items.forEach(([label, kind], index) => {
      group.append(svg("rect", { x: x + index * 130, y: y, width: 12, height: 12, class: "bar-" + kind }),
        svg("text", { x: x + index * 130 + 18, y: y + 11, class: "axis" }, label));
    });
    return group;
  }

  function tokensOverTime(points) {
    if (!points.length) return el("p", "note", "No usage recorded: nothing to chart.");
    const width = 760, height = 240, left = 70, right = 10, top = 30, bottom = 40;
    const plotWidth = width - left - right, plotHeight = height - top - bottom;
    const highest = Math.max(1, ...points.map((point) => point.prompt_tokens + point.completion_tokens));
    const chart = svg("svg", { viewBox: "0 0 " + width + " " + height, class: "chart", role: "img" },
      svg("title", {}, "Prompt and completion tokens over time"));
    chart.append(legend(left, 8, [["prompt tokens", "prompt"], ["completion tokens", "completion"]]));
    for (const fraction of [0, 0.5, 1]) {
      const y = top + plotHeight * (1 - fraction);
      chart.append(svg("line", { x1: left, x2: width - right, y1: y, y2: y, class: "grid" }),
        svg("text", { x: left - 6, y: y + 4, class: "axis", "text-anchor": "end" }, number(Math.round(highest * fraction))));
    }
    const step = plotWidth / points.length;
    const barWidth = Math.max(1, step * 0.8);
    points.forEach((point, index) => {
      const x = left + index * step + (step - barWidth) / 2;
      const promptHeight = plotHeight * point.prompt_tokens / highest;
      const completionHeight = plotHeight * point.completion_tokens / highest;
      const tip = svg("title", {}, point.first + (point.records > 1 ? " to " + point.last : "") + ": " + number(point.records) +
        " usage record(s), " + number(point.prompt_tokens) + " prompt + " + number(point.completion_tokens) + " completion tokens");
      chart.append(svg("g", { class: "bucket" }, tip,
        svg("rect", { x: x, y: top + plotHeight - promptHeight, width: barWidth, height: promptHeight, class: "bar-prompt" }),
        svg("rect", { x: x, y: top + plotHeight - promptHeight - completionHeight, width: barWidth, height: completionHeight,
          class: "bar-completion" })));
    });
    chart.append(svg("text", { x: left, y: height - 12, class: "axis" }, points[0].first),
      svg("text", { x: width - right, y: height - 12, class: "axis", "text-anchor": "end" }, points[points.length - 1].last));
    return chart;
  }

  function perModel(rows) {
    if (!rows.length) return el("p", "note", "No usage recorded: nothing to chart.");
    const width = 760, left = 190, right = 90, top = 30, rowHeight = 34;
    const height = top + rows.length * rowHeight + 10;
    const highest = Math.max(1, ...rows.map((row) => Math.max(row.prompt_tokens, row.completion_tokens)));
    const scale = (width - left - right) / highest;
    const chart = svg("svg", { viewBox: "0 0 " + width + " " + height, class: "chart", role: "img" },
      svg("title", {}, "Tokens per model"));
    chart.append(legend(left, 8, [["prompt tokens", "prompt"], ["completion tokens", "completion"]]));
    rows.forEach((row, index) => {
      const y = top + index * rowHeight;
      const name = row.model === null ? "(no model in the config)" : row.model;
      chart.append(svg("g", { class: "model-row" },
        svg("title", {}, name + ": " + number(row.calls) + " call(s), " + number(row.prompt_tokens) + " prompt + " +
          number(row.completion_tokens) + " completion tokens"),
        svg("text", { x: left - 8, y: y + 18, class: "axis", "text-anchor": "end" }, oneLine(name, 28)),
        svg("rect", { x: left, y: y + 2, width: Math.max(1, row.prompt_tokens * scale), height: 12, class: "bar-prompt" }),
        svg("text", { x: left + row.prompt_tokens * scale + 4, y: y + 12, class: "axis" }, number(row.prompt_tokens)),
        svg("rect", { x: left, y: y + 16, width: Math.max(1, row.completion_tokens * scale), height: 12, class: "bar-completion" }),
        svg("text", { x: left + row.completion_tokens * scale + 4, y: y + 26, class: "axis" }, number(row.completion_tokens))));
    });
    return chart;
  }

  function perConfig(perConfigData) {
    const box = el("div", "per-config");
    if (!perConfigData.rows.length) return box;
    const table = el("table", "configs");
    table.append(el("thead", null, el("tr", null, ...["model", "generation config", "calls", "prompt tokens",
      "completion tokens"].map((name) => el("th", null, name)))));
    const rows = el("tbody");
    for (const row of perConfigData.rows) {
      rows.append(el("tr", null, el("td", null, row.model === null ? "" : row.model), el("td", null, el("code", null, row.config || "none")),
        el("td", "number", number(row.calls)), el("td", "number", number(row.prompt_tokens)),
        el("td", "number", number(row.completion_tokens))));
    }
    table.append(rows);
    box.append(table);
    if (perConfigData.total > perConfigData.rows.length) {
      box.append(el("p", "note", "The " + number(perConfigData.rows.length) + " configs used most, of " +
        number(perConfigData.total) + ": `tract sql DIR \"...\"` has them all."));
    }
    return box;
  }

  function graphRow(tract, row) {
    const commit = tract.commits[row.commit];
    const summary = [el("span", "lanes", row.lanes), " ", el("code", "hash", short(row.commit)), " ",
      ...commit.refs.map((name) => badge(name, "ref")), ...markerBadges(commit), " ",
      el("span", "type", commit.content_type), " ", el("span", "preview", oneLine(commit.text, 90))];
    const out = [lazyDetails("graph-commit", summary, () => commitBody(tract, row.commit))];
    for (const line of row.after) out.push(el("div", "lanes graph-line", line));
    return out;
  }

  function conversationRow(tract, row) {
    const commit = tract.commits[row.commit];
    if (row.kind === "merge") {
      return [el("div", "merge", "merge ", el("code", null, short(row.commit)), ": ", commit.message || commit.text)];
    }
    const article = el("article", "message kind-" + (row.kind === "message" ? "message" : "left-out"));
    const role = row.kind === "message" ? row.role + (row.name ? " (" + row.name + ")" : "") : commit.content_type;
    article.append(el("header", null, badge(role, "role"), ...markerBadges(commit), " ", el("code", "hash", short(row.commit)),
      " ", el("span", "time", commit.created_at)));
    if (row.kind === "message") {
      article.append(el("pre", "text", row.text));
      if (row.text_length > row.text.length) {
        article.append(el("p", "note", "Cut to " + number(row.text.length) + " of " + number(row.text_length) + " characters."));
      }
    } else if (row.summarized_in) {
      article.append(el("p", "note", "Replaced in the context the model saw by the summary ", el("code", null, short(row.summarized_in)), "."));
      article.append(lazyDetails("left-out", ["its text"], () => el("pre", "text", commit.text)));
    } else {
      article.append(el("p", "note", "Left out of the context the model saw" +
        (commit.priority === "skip" ? " (SKIP)." : ".")));
      article.append(lazyDetails("left-out", ["its text"], () => el("pre", "text", commit.text)));
    }
    if (row.edits) {
      article.append(lazyDetails("originals", ["edited " + row.edits.length + " time(s): the original and each edit"], () => {
        const list = el("ol", "originals");
        list.append(el("li", null, "original ", el("code", null, short(row.commit)), ", " + commit.created_at,
          el("pre", "text", commit.text)));
        for (const hash of row.edits) {
          const edit = tract.commits[hash];
          list.append(el("li", null, "edit ", el("code", null, short(hash)), ", " + edit.created_at, el("pre", "text", edit.text)));
        }
        return list;
      }));
    }
    if (row.replaces) {
      article.append(lazyDetails("originals", ["a summary of " + row.replaces.length + " commit(s): the originals"], () => {
        const list = el("ol", "originals");
        for (const hash of row.replaces) {
          const original = tract.commits[hash];
          list.append(el("li", null, el("code", null, short(hash)), original ? ", " + original.created_at : "",
            original ? el("pre", "text", original.text) : el("p", "note", "not in this page")));
        }
        return list;
      }));
    }
    article.append(lazyDetails("commit-info", ["commit, generation config and usage"], () => commitBody(tract, row.commit)));
    return [article];
  }

  function section(tract, index) {
    const box = el("section", "tract");
    box.id = "tract-" + index;
    box.append(el("h2", null, "Tract ", el("code", "tract-id", tract.tract_id)));
    if (tract.error) {
      box.append(el("p", "error", "This tract could not be read: " + tract.error));
      return box;
    }
    box.append(el("p", "meta", "HEAD ", el("code", null, short(tract.head)),
      tract.current_branch === null ? " (detached)" : " on branch ", tract.current_branch === null ? "" : el("strong", "branch-name", tract.current_branch),
      "; chain head position " + number(tract.chain_head.position) + " ", el("code", null, tract.chain_head.hash),
      "; token counts by " + tract.token_source + "."));
    box.append(counts(tract));
    box.append(el("h3", null, "Branches"), branches(tract));
    box.append(el("h3", null, "Tokens over time (as the APIs reported them)"), tokensOverTime(tract.usage_over_time));
    box.append(el("h3", null, "Tokens per model and generation config"), perModel(tract.per_model), perConfig(tract.per_config));
    const graph = tract.graph;
    box.append(el("h3", null, "History of every branch, newest first"),
      truncationNote(graph.rows.length, graph.total, "commits") || "",
      pager(graph.rows, (row) => graphRow(tract, row), false, "commits"));
    const conversation = tract.conversation;
    box.append(el("h3", null, "The conversation as the model saw it at HEAD"),
      el("p", "note", "Oldest first. Edited messages show the edited text; open them for the original. Summaries open to the originals they replace. Skipped and replaced messages are shown, marked as left out."),
      truncationNote(conversation.rows.length, conversation.total, "messages") || "",
      pager(conversation.rows, (row) => conversationRow(tract, row), true, "messages"));
    return box;
  }

  const index = document.getElementById("tract-index");
  const main = document.getElementById("tracts");
  if (!data.tracts.length) main.append(el("p", "note", "No tract to show."));
  data.tracts.forEach((tract, place) => {
    const link = el("a", null, "tract ", el("code", null, tract.tract_id));
    link.href = "#tract-" + place;
    index.append(link, " ");
    main.append(section(tract, place));
  });
})();
