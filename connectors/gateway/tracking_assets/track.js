// mmhub tracking page: the signed-in party's own view of one shipment, read from the reader API's live feed.
// The token lives in this tab's sessionStorage and goes to the hub only in the Authorization header. Everything
// from the record is put in the page as text (textContent), never as markup.
"use strict";

(() => {
  const TOKEN_KEY = "mmhub.reader-token";
  const SVG_NS = "http://www.w3.org/2000/svg";
  // UN/ECE Recommendation 19 modes of transport
  const MODES = {
    0: "Not specified", 1: "Sea", 2: "Rail", 3: "Road", 4: "Air", 5: "Mail", 6: "Multimodal",
    7: "Fixed installation", 8: "Inland waterway", 9: "Other",
  };
  const DONE = new Set(["arrived", "discharged", "handed_over", "delivered"]);
  const MOVING = new Set(["received", "loaded", "departed"]);

  const $ = (id) => document.getElementById(id);
  let following = null; // the AbortController of the live feed being read
  let shown = null; // the last view rendered

  // --- building DOM ------------------------------------------------------------------------------------------------

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    setAttrs(node, attrs);
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(typeof child === "string" || typeof child === "number" ? String(child) : child);
    }
    return node;
  }

  function svgEl(tag, attrs, text) {
    const node = document.createElementNS(SVG_NS, tag);
    setAttrs(node, attrs);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function setAttrs(node, attrs) {
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value !== null && value !== undefined && value !== false) node.setAttribute(name, String(value));
    }
  }

  const words = (code) => (code === null || code === undefined ? "—" : String(code).replace(/_/g, " "));
  const mode = (code) => MODES[code] || `Mode ${code}`;
  const money = (m) => (m ? `${m.amount} ${m.currency}` : "—");

  function when(iso) {
    if (!iso) return "—";
    const t = new Date(iso);
    if (Number.isNaN(t.getTime())) return String(iso);
    const pad = (n) => String(n).padStart(2, "0");
    return `${t.getUTCFullYear()}-${pad(t.getUTCMonth() + 1)}-${pad(t.getUTCDate())} ` +
      `${pad(t.getUTCHours())}:${pad(t.getUTCMinutes())} UTC`;
  }

  function timeEl(iso) {
    if (!iso) return "—";
    const [day, ...clock] = when(iso).split(" ");
    return el("time", { datetime: iso }, el("span", { class: "nowrap" }, day), " ",
      el("span", { class: "nowrap" }, clock.join(" ")));
  }

  function lateness(planned, actual) {
    if (!planned || !actual) return null;
    const minutes = Math.round((new Date(actual) - new Date(planned)) / 60000);
    if (minutes === 0) return "on time";
    const size = Math.abs(minutes) >= 60 ? `${+(Math.abs(minutes) / 60).toFixed(1)} h` : `${Math.abs(minutes)} min`;
    return minutes > 0 ? `${size} late` : `${size} early`;
  }

  function actual(times) {
    const against = lateness(times.planned, times.actual);
    return el("span", {}, timeEl(times.actual), against ? el("span", { class: "against" }, `(${against})`) : null);
  }

  function badge(status) {
    const kind = DONE.has(status) ? "done" : MOVING.has(status) ? "moving" : status === "paid" ? "done" : "idle";
    return el("span", { class: `badge badge-${kind}`, "data-status": status }, words(status));
  }

  function section(id, title, ...content) {
    return el("section", { id, "aria-labelledby": `${id}-title` }, el("h2", { id: `${id}-title` }, title), content);
  }

  function facts(pairs) {
    const list = el("dl", { class: "facts" });
    for (const [term, value] of pairs) {
      if (value === null || value === undefined) continue;
      list.append(el("div", {}, el("dt", {}, term), el("dd", {}, value)));
    }
    return list;
  }

  function table(caption, head, rows, attrs) {
    return el("div", { class: "table-scroll" },
      el("table", attrs,
        el("caption", { class: "visually-hidden" }, caption),
        el("thead", {}, el("tr", {}, head.map((h) => el("th", { scope: "col" }, h)))),
        el("tbody", {}, rows.map((row) => el("tr", {}, row.map((cell, i) =>
          i === 0 ? el("th", { scope: "row" }, cell) : el("td", {}, cell)))))));
  }

  // --- what the view says ------------------------------------------------------------------------------------------

  const legsOf = (view) => [...(view.legs || [])].sort((a, b) => a.sequence - b.sequence);

  function eta(leg) {
    const arrival = leg.arrival || {};
    if (arrival.actual) return { label: "Arrived", at: arrival.actual };
    if (arrival.estimated) return { label: "ETA (estimated)", at: arrival.estimated };
    if (arrival.planned) return { label: "ETA (planned)", at: arrival.planned };
    return null;
  }

  // --- the route schematic -----------------------------------------------------------------------------------------

  function routeSchematic(view) {
    const legs = legsOf(view);
    const stops = []; // {node, legBefore}
    const segments = [];
    for (const leg of legs) {
      const last = stops[stops.length - 1];
      if (!last || last.node !== leg.origin) stops.push({ node: leg.origin, gap: Boolean(last) });
      const from = stops.length - 1;
      stops.push({ node: leg.destination, gap: false });
      segments.push({ leg, from, to: stops.length - 1 });
    }
    const step = 76;
    const height = Math.max(1, stops.length - 1) * step + 48;
    const y = (i) => 24 + i * step;
    const description = segments.map(({ leg }) =>
      `Leg ${leg.sequence}: ${leg.origin} to ${leg.destination} by ${mode(leg.mode).toLowerCase()}, ${words(leg.status)}` +
      ((leg.exceptions || []).length ? `, ${leg.exceptions.length} exception(s)` : ""),
    ).join("; ");
    const picture = svgEl("svg", {
      class: "route", viewBox: `0 0 340 ${height}`, role: "img",
      "aria-labelledby": "route-svg-title route-svg-desc", focusable: "false",
    });
    picture.append(svgEl("title", { id: "route-svg-title" }, "Route schematic"));
    picture.append(svgEl("desc", { id: "route-svg-desc" }, description || "No legs to show"));
    for (const { leg, from, to } of segments) {
      const state = DONE.has(leg.status) ? "done" : MOVING.has(leg.status) ? "moving" : "planned";
      const group = svgEl("g", {
        class: `leg leg-${state} mode-${leg.mode}`, "data-leg": leg.sequence, "data-status": leg.status,
      });
      group.append(svgEl("line", { x1: 28, y1: y(from), x2: 28, y2: y(to), class: "leg-line" }));
      const mid = (y(from) + y(to)) / 2;
      const exceptions = (leg.exceptions || []).length;
      group.append(svgEl("text", { x: 56, y: mid - 4, class: "leg-label" },
        `Leg ${leg.sequence} · ${mode(leg.mode)}${exceptions ? ` · ${exceptions} exception(s)` : ""}`));
      group.append(svgEl("text", { x: 56, y: mid + 14, class: "leg-sub" },
        `${leg.carrier || ""} · ${words(leg.status)}`));
      picture.append(group);
    }
    stops.forEach((stop, i) => {
      const here = stop.node === view.current_location;
      const group = svgEl("g", { class: here ? "node node-here" : "node", "data-node": stop.node });
      if (stop.gap) {
        group.append(svgEl("line", { x1: 28, y1: y(i) - step + 12, x2: 28, y2: y(i) - 12, class: "gap-line" }));
      }
      group.append(svgEl("circle", { cx: 28, cy: y(i), r: here ? 10 : 7 }));
      group.append(svgEl("text", { x: 56, y: y(i) + 5, class: "node-label" }, here ? `${stop.node} · cargo here` : stop.node));
      picture.append(group);
    });
    return picture;
  }

  // --- the sections ------------------------------------------------------------------------------------------------

  function summary(view) {
    const legs = legsOf(view);
    const lastLeg = legs[legs.length - 1];
    const arrival = lastLeg ? eta(lastLeg) : null;
    const booking = view.booking || {};
    const cargo = booking.cargo;
    return el("section", { id: "summary", "aria-labelledby": "shipment-title" },
      el("h1", { id: "shipment-title", tabindex: "-1" }, `Shipment ${view.shipment_id}`),
      facts([
        ["Status", badge(view.status)],
        ["Where the cargo is", view.current_location || "—"],
        [arrival && lastLeg ? `${arrival.label} at ${lastLeg.destination}` : null, arrival ? timeEl(arrival.at) : null],
        ["Requested delivery", booking.requested_delivery ? timeEl(booking.requested_delivery) : null],
        ["Shipper", view.shipper ? view.shipper.name : null],
        ["Consignee", view.consignee ? view.consignee.name : null],
        ["Responsible operator", view.responsible_operator],
        ["Booking", view.booking_status ? words(view.booking_status) : null],
        ["Cargo", cargo ? `${cargo.description} — ${cargo.packages} packages, ${cargo.gross_weight_kg} kg` : null],
        ["Containers", cargo && cargo.containers && cargo.containers.length ? cargo.containers.join(", ") : null],
        ["Record", el("span", {}, `version ${view.version}, updated `, timeEl(view.updated_at))],
      ]));
  }

  function legItem(leg, openMilestones) {
    const dep = leg.departure || {};
    const arr = leg.arrival || {};
    const arrival = eta(leg);
    const milestones = leg.milestones || [];
    const exceptions = leg.exceptions || [];
    const details = el("details", { id: `leg-${leg.sequence}-milestones`, open: openMilestones },
      el("summary", { id: `leg-${leg.sequence}-milestones-toggle` }, `Milestones (${milestones.length})`),
      el("ol", { class: "milestones" }, milestones.map((m) => el("li", {},
        timeEl(m.at), ` ${words(m.status)}`, m.classifier !== "ACT" ? ` (${m.classifier === "EST" ? "estimated" : "planned"})` : "",
        m.location ? ` at ${m.location}` : "", m.raw_code ? ` — code ${m.raw_code}` : ""))));
    return el("li", { class: "leg-item", "data-leg": leg.sequence, "data-status": leg.status },
      el("article", { "aria-labelledby": `leg-${leg.sequence}-title` },
        el("h3", { id: `leg-${leg.sequence}-title` }, `Leg ${leg.sequence}: ${leg.origin} → ${leg.destination}`),
        el("p", { class: "leg-meta" }, `${mode(leg.mode)} · ${leg.carrier || "carrier not named"} · `, badge(leg.status)),
        arrival ? el("p", { class: "eta" }, `${arrival.label}: `, timeEl(arrival.at)) : null,
        table(`Times of leg ${leg.sequence}`, ["", "Planned", "Estimated", "Actual"], [
          ["Departure", timeEl(dep.planned), timeEl(dep.estimated), actual(dep)],
          ["Arrival", timeEl(arr.planned), timeEl(arr.estimated), actual(arr)],
        ], { class: "times" }),
        exceptions.length ? el("p", { class: "leg-exceptions" }, `${exceptions.length} exception(s) reported on this leg`) : null,
        details));
  }

  function legsSection(view, openMilestones) {
    const legs = legsOf(view);
    return section("legs", "Legs",
      legs.length ? el("ol", { class: "legs" }, legs.map((leg) => legItem(leg, openMilestones.has(leg.sequence))))
        : el("p", {}, "No legs are planned yet."));
  }

  function custodySection(view) {
    const custody = view.custody || [];
    return section("custody", "Custody",
      custody.length ? el("ol", { class: "timeline" }, custody.map((c) => el("li", {},
        el("strong", {}, c.party), ` (${words(c.role)}${c.leg ? `, leg ${c.leg}` : ""}): `,
        c.since ? timeEl(c.since) : "from the start", " to ", c.until ? timeEl(c.until) : "now")))
        : el("p", {}, "No custody is recorded yet."));
  }

  function exceptionsSection(view) {
    const exceptions = legsOf(view).flatMap((leg) => (leg.exceptions || []).map((e) => ({ leg: leg.sequence, ...e })));
    const discrepancies = view.discrepancies || [];
    const parts = [];
    parts.push(el("h3", {}, "Exceptions"));
    parts.push(exceptions.length ? el("ul", { class: "exceptions" }, exceptions.map((e) => el("li", {},
      el("strong", {}, words(e.status)), ` on leg ${e.leg}`, e.location ? ` at ${e.location}` : "", ", ", timeEl(e.at),
      e.raw_code ? ` — code ${e.raw_code}` : ""))) : el("p", {}, "No exceptions reported."));
    if (discrepancies.length) {
      parts.push(el("h3", {}, "Discrepancies at handover"));
      parts.push(el("ul", {}, discrepancies.map((d) => el("li", {}, Object.entries(d)
        .filter(([, v]) => v !== null && typeof v !== "object").map(([k, v]) => `${words(k)}: ${v}`).join(", ")))));
    }
    if (view.claims !== undefined) {
      parts.push(el("h3", {}, "Claims"));
      parts.push(view.claims.length ? el("ul", { class: "claims" }, view.claims.map((c) => el("li", {},
        el("strong", {}, c.claim_id), ` — ${words(c.kind)}, `, badge(c.status),
        c.leg ? `, leg ${c.leg}` : "", c.location ? ` at ${c.location}` : "", ", ", timeEl(c.occurred_at),
        c.affected_packages ? `; ${c.affected_packages} packages affected` : "",
        c.liability && c.liability.converted ? `; liability limit ${money(c.liability.converted)}` : "",
        c.settled_amount ? `; settled ${money(c.settled_amount)}` : ""))) : el("p", {}, "No claims."));
    }
    return section("exceptions", "Exceptions and claims", parts);
  }

  function documentSection(view) {
    const doc = view.through_document;
    if (!doc) return section("document", "Through document", el("p", {}, "No through document is issued yet."));
    const endorsements = doc.endorsements || [];
    return section("document", "Through document",
      facts([
        ["Kind", words(doc.kind)],
        ["Number", doc.number],
        ["Issuer", doc.issuer],
        ["Status", badge(doc.status)],
        ["Holder", doc.holder],
      ]),
      endorsements.length ? el("ol", { class: "timeline" }, endorsements.map((e) =>
        el("li", {}, `Endorsed to ${e.holder}, `, timeEl(e.at)))) : null);
  }

  // Only the billing grade's fields: the invoice the party pays, its notes, payments and balance. Per-carrier charges
  // and payouts (the rates grade) are never drawn, even for the carrier whose own they are.
  function billingSection(view) {
    const s = view.settlement;
    if (!s || !(s.invoices || s.balance || s.payments)) return null;
    const invoices = s.invoices || [];
    const notes = s.notes || [];
    const payments = s.payments || [];
    const balance = s.balance || [];
    return section("billing", "Invoice and payment",
      s.status ? el("p", {}, "Payment status: ", badge(s.status)) : null,
      invoices.length ? table("Invoices", ["Invoice", "Revision", "Issued", "Total"],
        invoices.map((i) => [i.invoice_id, String(i.revision), timeEl(i.issued_at), (i.total || []).map(money).join(" + ")]))
        : el("p", {}, "No invoice is issued yet."),
      notes.length ? table("Credit and debit notes", ["Note", "Kind", "Amount"],
        notes.map((n) => [n.note_id, words(n.kind), money(n.amount)])) : null,
      balance.length ? table("Balance", ["Currency", "Invoiced", "Paid", "Due", "Status"],
        balance.map((b) => [b.currency, b.invoiced, b.paid, b.outstanding, badge(b.status)])) : null,
      payments.length ? table("Payments", ["Payment", "Amount", "Applied", "Status"],
        payments.map((p) => [p.payment_id, money(p.amount), money(p.applied), badge(p.status)])) : null);
  }

  // --- showing one state or another --------------------------------------------------------------------------------

  function only(id) {
    for (const part of ["sign-in", "not-found", "shipment"]) $(part).hidden = part !== id;
    $("sign-out").hidden = id === "sign-in";
  }

  function announce(text) {
    $("announcer").textContent = text;
  }

  function connection(text) {
    $("connection").textContent = text;
  }

  function changes(before, after) {
    if (!before || before.shipment_id !== after.shipment_id) return `Showing shipment ${after.shipment_id}.`;
    const was = new Map(legsOf(before).map((leg) => [leg.sequence, leg.status]));
    const moved = legsOf(after).filter((leg) => was.get(leg.sequence) !== leg.status)
      .map((leg) => `leg ${leg.sequence} is now ${words(leg.status)}`);
    const status = before.status !== after.status ? [`the shipment is now ${words(after.status)}`] : [];
    const said = [...status, ...moved];
    return `Updated to version ${after.version}${said.length ? `: ${said.join("; ")}` : ""}.`;
  }

  function render(view) {
    const root = $("shipment");
    const focused = document.activeElement && root.contains(document.activeElement) ? document.activeElement.id : null;
    const open = new Set(legsOf(view).map((leg) => leg.sequence)
      .filter((n) => { const d = $(`leg-${n}-milestones`); return d && d.open; }));
    const first = root.hidden;
    const said = changes(shown, view);
    const sections = [
      summary(view),
      section("route", "Route", routeSchematic(view)),
      legsSection(view, open),
      custodySection(view),
      exceptionsSection(view),
      documentSection(view),
      billingSection(view),
    ];
    root.replaceChildren(...sections.filter((part) => part !== null));
    root.dataset.version = String(view.version);
    root.dataset.shipment = view.shipment_id;
    shown = view;
    only("shipment");
    announce(said);
    if (first) $("shipment-title").focus();
    else if (focused && $(focused)) $(focused).focus();
  }

  function showSignIn(id, error) {
    stop();
    shown = null;
    only("sign-in");
    $("shipment-id").value = id || "";
    $("token").value = "";
    $("sign-in-error").hidden = !error;
    $("sign-in-error").textContent = error || "";
    connection("Not connected");
    (id ? $("token") : $("shipment-id")).focus();
  }

  function showNotFound() {
    stop();
    shown = null;
    $("shipment").replaceChildren();
    only("not-found");
    connection("Not connected");
    announce("Not found.");
    $("not-found-title").focus();
  }

  // --- the live feed (text/event-stream over fetch, so the token travels in a header) --------------------------------

  function stop() {
    if (following) following.abort();
    following = null;
  }

  function pause(ms, signal) {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      signal.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
    });
  }

  function parseFrame(block) {
    const frame = { event: "message", data: [], id: null, retry: null };
    for (const line of block.split("\n")) {
      if (line === "" || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") frame.event = value;
      else if (field === "data") frame.data.push(value);
      else if (field === "id") frame.id = value;
      else if (field === "retry" && /^\d+$/.test(value)) frame.retry = Number(value);
    }
    return { ...frame, data: frame.data.join("\n") };
  }

  async function follow(id, token) {
    stop();
    const control = new AbortController();
    following = control;
    const { signal } = control;
    let lastId = null;
    let retryMs = 3000;
    connection("Connecting…");
    $("main").setAttribute("aria-busy", "true");
    while (!signal.aborted) {
      let response;
      try {
        const headers = { Authorization: `Bearer ${token}`, Accept: "text/event-stream" };
        if (lastId !== null) headers["Last-Event-ID"] = lastId;
        response = await fetch(`/v1/shipments/${encodeURIComponent(id)}/live`, {
          headers, signal, cache: "no-store", credentials: "omit", referrerPolicy: "no-referrer",
        });
      } catch (error) {
        if (signal.aborted) return;
        connection("The hub cannot be reached; trying again…");
        await pause(retryMs, signal);
        continue;
      }
      $("main").setAttribute("aria-busy", "false");
      if (response.status === 401) {
        sessionStorage.removeItem(TOKEN_KEY);
        showSignIn(id, "The hub did not accept this token. Check it and sign in again.");
        return;
      }
      if (response.status === 404) {
        showNotFound();
        return;
      }
      if (!response.ok || !response.body) {
        const wait = Number(response.headers.get("Retry-After")) * 1000 || retryMs;
        connection(response.status === 429 ? "Too many live views are open; trying again shortly…"
          : `The hub answered ${response.status}; trying again…`);
        await pause(wait, signal);
        continue;
      }
      connection("Live: changes appear here as they happen");
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer = (buffer + decoder.decode(value, { stream: true })).replace(/\r\n/g, "\n");
          let cut;
          while ((cut = buffer.indexOf("\n\n")) >= 0) {
            const frame = parseFrame(buffer.slice(0, cut));
            buffer = buffer.slice(cut + 2);
            if (frame.retry !== null) retryMs = frame.retry;
            if (frame.id !== null) lastId = frame.id;
            if (frame.event === "status") render(JSON.parse(frame.data));
            else if (frame.event === "revoked") { showNotFound(); return; }
          }
        }
      } catch (error) {
        if (signal.aborted) return;
      }
      if (signal.aborted) return;
      connection("The live feed was interrupted; reconnecting…");
      await pause(retryMs, signal);
    }
  }

  // --- where we are ------------------------------------------------------------------------------------------------

  function idFromPath() {
    const match = /^\/track\/([^/]+)$/.exec(location.pathname);
    if (!match) return null;
    try { return decodeURIComponent(match[1]); } catch (error) { return null; }
  }

  function start() {
    const id = idFromPath();
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (id && token) follow(id, token);
    else showSignIn(id);
  }

  function onSubmit(event) {
    event.preventDefault();
    const id = $("shipment-id").value.trim();
    const token = $("token").value.trim() || sessionStorage.getItem(TOKEN_KEY);
    if (!id || !token) {
      $("sign-in-error").textContent = !id ? "Enter the shipment id." : "Enter your reader token.";
      $("sign-in-error").hidden = false;
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    $("token").value = "";
    const path = `/track/${encodeURIComponent(id)}`;
    if (location.pathname !== path) history.pushState(null, "", path);
    follow(id, token);
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("sign-in-form").addEventListener("submit", onSubmit);
    $("sign-out").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      showSignIn(idFromPath());
    });
    $("try-another").addEventListener("click", () => showSignIn(null));
    window.addEventListener("popstate", start);
    start();
  });
})();
