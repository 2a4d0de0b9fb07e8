// The seat map drawn on one <canvas>, for venues of a few dozen seats up to a
// stadium's 100,000: where each seat is (SeatLayout), and the view that draws the
// seats in sight, pans and zooms (drag, wheel, pinch, buttons, keys) and finds the
// seat under a pointer by arithmetic (SeatCanvas). Which seat is in which state
// is the page's business (seats.js): the view asks for it by seat index.
"use strict";

/// What the map shows of a seat, in drawing order of importance.
const SHOWN = { free: 0, held: 1, sold: 2, mine: 3, picked: 4 };
/// The legend's colours (anteroom.css), by SHOWN code.
const SEAT_COLOURS = ["#34a853", "#f0a500", "#9a9aa2", "#0b5cad", "#7b2ff7"];

/// Seats numbered the way the compact seat map lists them: section by section in
/// the event's order, row 1..rows, seat 1..seats_per_row.
class SeatLayout {
  constructor(sections) {
    let offset = 0, rowsBefore = 0;
    this.widest = Math.max(...sections.map((s) => s.seats_per_row));
    this.sections = sections.map((section, index) => {
      const placed = {
        ...section, index, offset, rowsBefore,
        // Narrower sections are centred under the widest one, in seat widths.
        left: (this.widest - section.seats_per_row) / 2,
      };
      offset += section.rows * section.seats_per_row;
      rowsBefore += section.rows;
      return placed;
    });
    this.seats = offset;
    this.rows = rowsBefore;
    this.byId = new Map(this.sections.map((s) => [s.id, s]));
  }

  /// The seat's index, or -1 for an id that names no seat of this venue.
  indexOf(id) {
    const [sectionId, row, seat] = id.split("-");
    const section = this.byId.get(sectionId);
    const r = Number(row), n = Number(seat);
    if (!section || !(r >= 1 && r <= section.rows && n >= 1 && n <= section.seats_per_row)) return -1;
    return this.at(section, r, n);
  }

  at(section, row, seat) { return section.offset + (row - 1) * section.seats_per_row + seat - 1; }

  /// {section, row, seat} of an index.
  place(index) {
    let section = this.sections[0];
    for (const s of this.sections) if (s.offset <= index) section = s;
    const within = index - section.offset;
    return { section, row: Math.floor(within / section.seats_per_row) + 1, seat: within % section.seats_per_row + 1 };
  }

  idOf(index) {
    const p = this.place(index);
    return p.section.id + "-" + p.row + "-" + p.seat;
  }

  /// The seat an arrow key leads to: along the row, or to the same seat number
  /// (or the nearest) in the row above or below, across sections.
  neighbour(index, key) {
    const { section, row, seat } = this.place(index);
    const next = this.sections[section.index + 1], previous = this.sections[section.index - 1];
    const clamp = (s, n) => Math.min(n, s.seats_per_row);
    switch (key) {
      case "ArrowLeft": return this.at(section, row, Math.max(1, seat - 1));
      case "ArrowRight": return this.at(section, row, clamp(section, seat + 1));
      case "Home": return this.at(section, row, 1);
      case "End": return this.at(section, row, section.seats_per_row);
      case "ArrowDown":
        if (row < section.rows) return this.at(section, row + 1, seat);
        return next ? this.at(next, 1, clamp(next, seat)) : index;
      case "ArrowUp":
        if (row > 1) return this.at(section, row - 1, seat);
        return previous ? this.at(previous, previous.rows, clamp(previous, seat)) : index;
      default: return null;
    }
  }
}

/// The view. `options`:
/// - `shown(index)`: the SHOWN code to draw;
/// - `free(index)`: whether the seat is free (for the sections' counts);
/// - `label(section, free, short)`: a section's heading, the short one without the count;
/// - `marked()`: the indices of the visitor's own seats, marked even when too small to see;
/// - `onPick(index)`: a seat was clicked, tapped, or chosen with Enter;
/// - `onPoint(index, byKeyboard)`: the seat under the pointer or the keyboard's cursor changed.
class SeatCanvas {
  // Fixed parts of the drawing, in CSS px: a section's heading, the space between
  // sections, the row numbers' gutter and the margins.
  static HEADER = 30; static GAP = 16; static GUTTER = 30; static MARGIN = 10;
  /// Seat pitch (CSS px) below which seats are drawn as one pixel each, scaled:
  /// an overview of where seats are free.
  static DETAIL = 7;
  /// Seat pitch from which a click or tap picks a seat rather than zooming in.
  static PICK_MOUSE = 7; static PICK_TOUCH = 20;
  /// Seat pitch the keyboard's cursor zooms in to, where seats are smaller: its ring must be seen.
  static KEYBOARD = 14;
  static MAX_PITCH = 56;
  /// The seat's square within its pitch; an unavailable seat is drawn smaller, so
  /// that "taken" does not rest on colour alone.
  static SEAT = 0.8; static TAKEN = 0.5;

  constructor(canvas, layout, options) {
    this.canvas = canvas;
    this.layout = layout;
    this.options = options;
    this.ctx = canvas.getContext("2d");
    this.pitch = 1;
    this.x = 0;
    this.y = 0;
    this.cursor = 0;
    this.showCursor = false;
    this.pointers = new Map();
    this.gesture = null;
    this.pointed = -1;
    this.frame = 0;
    this.touchLike = matchMedia("(pointer: coarse), (max-width: 40rem)");
    this.freeCounts = layout.sections.map(() => 0);
    // One pixel per seat, per section: drawn scaled when the seats are too small to draw one by one.
    this.bitmaps = layout.sections.map((s) => {
      const canvas = document.createElement("canvas");
      canvas.width = s.seats_per_row;
      canvas.height = s.rows;
      const ctx = canvas.getContext("2d");
      return { canvas, ctx, image: ctx.createImageData(s.seats_per_row, s.rows), dirty: true };
    });
    this.rgb = SEAT_COLOURS.map((hex) => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16)));
    this.listen();
    this.resize(true);
    this.repaintAll();
  }

  // --- Geometry (CSS px within the canvas) ------------------------------------

  top(section) {
    const C = SeatCanvas;
    return this.y + C.MARGIN + (section.index + 1) * C.HEADER + section.index * C.GAP + this.pitch * section.rowsBefore;
  }
  left(section) { return this.x + SeatCanvas.GUTTER + this.pitch * section.left; }
  contentWidth(pitch) { return SeatCanvas.GUTTER + pitch * this.layout.widest + SeatCanvas.MARGIN; }
  contentHeight(pitch) {
    const C = SeatCanvas, n = this.layout.sections.length;
    return 2 * C.MARGIN + n * C.HEADER + (n - 1) * C.GAP + pitch * this.layout.rows;
  }

  /// The seat's square in client coordinates (for the browser tests, and for
  /// anyone who wants to know where a seat is on screen).
  seatBox(index) {
    const { section, row, seat } = this.layout.place(index);
    const box = this.canvas.getBoundingClientRect();
    const x = this.left(section) + this.pitch * (seat - 1), y = this.top(section) + this.pitch * (row - 1);
    return { x: box.left + x, y: box.top + y, width: this.pitch * SeatCanvas.SEAT, height: this.pitch * SeatCanvas.SEAT };
  }

  /// The seat at a point of the canvas, or -1. A seat owns its whole pitch, gap included.
  seatAt(px, py) {
    for (const section of this.layout.sections) {
      const row = Math.floor((py - this.top(section)) / this.pitch) + 1;
      const seat = Math.floor((px - this.left(section)) / this.pitch) + 1;
      if (row >= 1 && row <= section.rows && seat >= 1 && seat <= section.seats_per_row) {
        return this.layout.at(section, row, seat);
      }
    }
    return -1;
  }

  // --- Size, zoom and pan -------------------------------------------------------

  /// The pitch a seat is first shown at: big enough to pick (larger on touch
  /// screens), or the whole venue when that would be a wall of scrolling.
  startPitch(width, maxHeight) {
    const C = SeatCanvas;
    const touch = this.touchLike.matches;
    const preferred = touch ? 35 : 25, smallest = touch ? 30 : 18;
    if (this.contentWidth(preferred) > 3 * width) return this.fitPitch(width, maxHeight);
    const fitsHeight = (maxHeight - this.contentHeight(0)) / this.layout.rows;
    return Math.max(smallest, Math.min(preferred, fitsHeight, C.MAX_PITCH));
  }

  fitPitch(width = this.width, height = this.height) {
    const C = SeatCanvas;
    const across = (width - C.GUTTER - C.MARGIN) / this.layout.widest;
    const down = (height - this.contentHeight(0)) / this.layout.rows;
    return Math.max(0.05, Math.min(across, down, C.MAX_PITCH));
  }

  /// Sizes the canvas to its box and the screen's pixel density; `first` also
  /// chooses its height and the first view.
  resize(first) {
    const box = this.canvas.parentElement.clientWidth;
    const maxHeight = Math.round(innerHeight * (this.touchLike.matches ? 0.6 : 0.7));
    const start = this.startPitch(box, maxHeight);
    // A venue first shown whole is zoomed into next: room for that, however flat it is.
    const least = start < SeatCanvas.DETAIL ? Math.min(maxHeight, 360) : 120;
    const height = Math.max(least, Math.min(maxHeight, Math.ceil(this.contentHeight(start))));
    this.canvas.style.height = height + "px";
    this.width = this.canvas.clientWidth;
    this.height = height;
    this.dpr = devicePixelRatio || 1;
    this.canvas.width = Math.round(this.width * this.dpr);
    this.canvas.height = Math.round(this.height * this.dpr);
    if (first) {
      this.pitch = start;
      this.x = 0;
      this.y = 0;
    }
    this.clampView();
    this.redraw();
  }

  minPitch() { return Math.min(this.fitPitch(), SeatCanvas.PICK_TOUCH); }

  /// Keeps the venue in view: centred where it is smaller than the canvas, its
  /// edges never pulled inside otherwise.
  clampView() {
    const w = this.contentWidth(this.pitch), h = this.contentHeight(this.pitch);
    this.x = w <= this.width ? (this.width - w) / 2 : Math.min(0, Math.max(this.width - w, this.x));
    this.y = h <= this.height ? (this.height - h) / 2 : Math.min(0, Math.max(this.height - h, this.y));
  }

  /// Zooms to `pitch`, keeping the point (px, py) of the canvas over the same spot of the venue.
  zoomTo(pitch, px = this.width / 2, py = this.height / 2) {
    const C = SeatCanvas;
    pitch = Math.max(this.minPitch(), Math.min(C.MAX_PITCH, pitch));
    const across = (px - this.x - C.GUTTER) / this.pitch;
    // Down the venue, the headings keep their size: anchor to a section and a row within it.
    const sections = this.layout.sections;
    let section = sections[sections.length - 1];
    for (const s of sections) {
      if (py < this.top(s) + this.pitch * s.rows + C.GAP / 2) { section = s; break; }
    }
    const down = Math.max(0, Math.min(section.rows, (py - this.top(section)) / this.pitch));
    this.pitch = pitch;
    this.x = px - C.GUTTER - pitch * across;
    this.y = py - (this.top(section) - this.y) - pitch * down;
    this.clampView();
    this.redraw();
  }

  zoomBy(factor, px, py) { this.zoomTo(this.pitch * factor, px, py); }
  showAll() { this.zoomTo(this.fitPitch()); }

  panBy(dx, dy) {
    this.x += dx;
    this.y += dy;
    this.clampView();
    this.redraw();
  }

  /// Brings the seat into view, zoomed in to at least `pitch` around it if the seats are smaller.
  reveal(index, pitch = 0) {
    const C = SeatCanvas;
    if (this.pitch < pitch) {
      const box = this.localBox(index);
      this.zoomTo(pitch, box.x + box.size / 2, box.y + box.size / 2);
    }
    const box = this.localBox(index), margin = Math.min(40, this.width / 4);
    const inside = box.x >= C.GUTTER && box.x + box.size <= this.width - margin / 2 && box.y >= margin && box.y + box.size <= this.height - margin / 2;
    if (!inside) this.panBy(this.width / 2 - box.x - box.size / 2, this.height / 2 - box.y - box.size / 2);
  }

  localBox(index) {
    const { section, row, seat } = this.layout.place(index);
    return { x: this.left(section) + this.pitch * (seat - 1), y: this.top(section) + this.pitch * (row - 1), size: this.pitch };
  }

  // --- State changes ----------------------------------------------------------

  /// Every seat may have changed (a whole map was read).
  repaintAll() {
    for (const section of this.layout.sections) this.repaintSection(section);
    this.redraw();
  }

  repaintSection(section) {
    const { image } = this.bitmaps[section.index];
    const end = section.offset + section.rows * section.seats_per_row;
    let free = 0;
    for (let i = section.offset, p = 0; i < end; i++, p += 4) {
      const rgb = this.rgb[this.options.shown(i)];
      image.data[p] = rgb[0];
      image.data[p + 1] = rgb[1];
      image.data[p + 2] = rgb[2];
      image.data[p + 3] = 255;
      if (this.options.free(i)) free++;
    }
    this.freeCounts[section.index] = free;
    this.bitmaps[section.index].dirty = true;
  }

  /// These seats changed; their sections are counted again.
  repaint(indices) {
    const sections = new Set(indices.filter((i) => i >= 0 && i < this.layout.seats).map((i) => this.layout.place(i).section));
    for (const section of sections) this.repaintSection(section);
    this.redraw();
  }

  // --- Drawing ----------------------------------------------------------------

  redraw() {
    if (!this.frame) this.frame = requestAnimationFrame(() => { this.frame = 0; this.draw(); });
  }

  draw() {
    const C = SeatCanvas, ctx = this.ctx;
    ctx.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
    ctx.fillStyle = "#fbfbfd";
    ctx.fillRect(0, 0, this.width, this.height);
    const detail = this.pitch >= C.DETAIL;
    for (const section of this.layout.sections) {
      const top = this.top(section), left = this.left(section);
      if (top > this.height || top + this.pitch * section.rows < 0) continue;
      if (detail) this.drawSeats(section, top, left);
      else this.drawOverview(section, top, left);
    }
    if (!detail) this.drawMarks();
    this.drawLabels();
    if (this.showCursor && document.activeElement === this.canvas) this.drawCursor();
  }

  drawOverview(section, top, left) {
    const bitmap = this.bitmaps[section.index];
    if (bitmap.dirty) {
      bitmap.ctx.putImageData(bitmap.image, 0, 0);
      bitmap.dirty = false;
    }
    // Smaller than a device pixel, seats are averaged (the share of free seats
    // shows as colour); larger, each stays a crisp block.
    this.ctx.imageSmoothingEnabled = this.pitch * this.dpr < 1;
    this.ctx.imageSmoothingQuality = "high";
    this.ctx.drawImage(bitmap.canvas, left, top, this.pitch * section.seats_per_row, this.pitch * section.rows);
  }

  /// The seats in sight, one square each, one path per colour.
  drawSeats(section, top, left) {
    const C = SeatCanvas, ctx = this.ctx, p = this.pitch;
    const firstRow = Math.max(1, Math.floor(-top / p) + 1), lastRow = Math.min(section.rows, Math.ceil((this.height - top) / p));
    const firstSeat = Math.max(1, Math.floor((C.GUTTER - left) / p)), lastSeat = Math.min(section.seats_per_row, Math.ceil((this.width - left) / p));
    const paths = SEAT_COLOURS.map(() => new Path2D());
    const rounded = p >= 14;
    const full = p * C.SEAT, small = p * C.TAKEN;
    for (let row = firstRow; row <= lastRow; row++) {
      const y = top + p * (row - 1);
      let i = this.layout.at(section, row, firstSeat);
      for (let seat = firstSeat; seat <= lastSeat; seat++, i++) {
        const shown = this.options.shown(i);
        const size = shown === SHOWN.held || shown === SHOWN.sold ? small : full;
        const x = left + p * (seat - 1) + (full - size) / 2, sy = y + (full - size) / 2;
        if (rounded) paths[shown].roundRect(x, sy, size, size, Math.min(4, size / 5));
        else paths[shown].rect(x, sy, size, size);
      }
    }
    paths.forEach((path, code) => { ctx.fillStyle = SEAT_COLOURS[code]; ctx.fill(path); });
    if (p >= 22) this.drawSeatNumbers(section, top, left, firstRow, lastRow, firstSeat, lastSeat);
  }

  /// Seat numbers on the free and chosen seats, once they are big enough to read.
  drawSeatNumbers(section, top, left, firstRow, lastRow, firstSeat, lastSeat) {
    const ctx = this.ctx, p = this.pitch, size = p * SeatCanvas.SEAT;
    ctx.font = Math.round(Math.min(12, p * 0.36)) + "px system-ui, sans-serif";
    // Only where the longest number of the section fits inside its seat with room to spare.
    if (ctx.measureText(String(section.seats_per_row)).width > size * 0.8) return;
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    ctx.fillStyle = "#fff";
    for (let row = firstRow; row <= lastRow; row++) {
      let i = this.layout.at(section, row, firstSeat);
      for (let seat = firstSeat; seat <= lastSeat; seat++, i++) {
        const shown = this.options.shown(i);
        if (shown === SHOWN.held || shown === SHOWN.sold) continue;
        ctx.fillText(String(seat), left + p * (seat - 1) + size / 2, top + p * (row - 1) + size / 2 + 0.5);
      }
    }
  }

  /// The visitor's own seats, ringed so that they can be found in the overview.
  drawMarks() {
    const ctx = this.ctx;
    for (const index of this.options.marked()) {
      const box = this.localBox(index);
      ctx.beginPath();
      ctx.arc(box.x + box.size / 2, box.y + box.size / 2, 6, 0, 2 * Math.PI);
      ctx.fillStyle = SEAT_COLOURS[this.options.shown(index)];
      ctx.fill();
      ctx.lineWidth = 2;
      ctx.strokeStyle = "#fff";
      ctx.stroke();
    }
  }

  /// Section headings and row numbers; both stay at the canvas's edge when the
  /// venue's own edge is scrolled out of sight.
  drawLabels() {
    const C = SeatCanvas, ctx = this.ctx, p = this.pitch;
    ctx.textBaseline = "alphabetic";
    const rowNumbers = p >= 13;
    if (rowNumbers) {
      if (this.x < 0) {
        ctx.fillStyle = "#fbfbfd";
        ctx.fillRect(0, 0, C.GUTTER - 2, this.height);
        ctx.fillStyle = "#e3e3e8";
        ctx.fillRect(C.GUTTER - 2, 0, 1, this.height);
      }
      ctx.font = Math.round(Math.max(9, Math.min(12, p * 0.5))) + "px system-ui, sans-serif";
      ctx.textAlign = "right";
      ctx.fillStyle = "#55555a";
    }
    for (const section of this.layout.sections) {
      const top = this.top(section);
      if (rowNumbers) {
        const right = Math.max(C.GUTTER, this.left(section)) - 6;
        const first = Math.max(1, Math.floor(-top / p) + 1), last = Math.min(section.rows, Math.ceil((this.height - top) / p));
        for (let row = first; row <= last; row++) ctx.fillText(String(row), right, top + p * (row - 1) + p * C.SEAT / 2 + 4);
      }
    }
    ctx.font = "600 14px system-ui, sans-serif";
    ctx.textAlign = "left";
    for (const section of this.layout.sections) {
      const top = this.top(section), bottom = top + p * section.rows;
      if (bottom < 0 || top - C.HEADER > this.height) continue;
      // The short heading (no count of free seats) where the long one does not fit.
      let text = this.options.label(section, this.freeCounts[section.index], false);
      if (ctx.measureText(text).width > this.width - C.GUTTER - C.MARGIN) text = this.options.label(section, 0, true);
      const width = ctx.measureText(text).width;
      const x = Math.max(C.MARGIN, Math.min(Math.max(this.left(section), C.GUTTER), this.width - width - C.MARGIN));
      const baseline = top - 9;
      if (baseline < 20) {
        // Scrolled above the canvas, the heading stays on a band at its top while its rows are in sight.
        const stuck = Math.min(20, bottom - 4);
        ctx.fillStyle = "#fbfbfd";
        ctx.fillRect(0, stuck - 20, this.width, 27);
        ctx.fillStyle = "#e3e3e8";
        ctx.fillRect(0, stuck + 7, this.width, 1);
        ctx.fillStyle = "#1d1d1f";
        ctx.fillText(text, x, stuck);
        continue;
      }
      ctx.fillStyle = "#1d1d1f";
      ctx.fillText(text, x, baseline);
    }
  }

  drawCursor() {
    const box = this.localBox(this.cursor), ctx = this.ctx;
    const size = Math.max(box.size * SeatCanvas.SEAT, 8), inset = (box.size * SeatCanvas.SEAT - size) / 2;
    ctx.lineWidth = 3;
    ctx.strokeStyle = "#f0a500";
    ctx.strokeRect(box.x + inset - 3, box.y + inset - 3, size + 6, size + 6);
    ctx.lineWidth = 1;
    ctx.strokeStyle = "#1d1d1f";
    ctx.strokeRect(box.x + inset - 5, box.y + inset - 5, size + 10, size + 10);
  }

  // --- Input ------------------------------------------------------------------

  /// Moves the keyboard's cursor; the seat comes into view, big enough to see.
  moveCursor(index, announce) {
    this.cursor = index;
    this.reveal(index, SeatCanvas.KEYBOARD);
    this.redraw();
    if (announce) this.options.onPoint(index, true);
  }

  local(e) {
    const box = this.canvas.getBoundingClientRect();
    return { x: e.clientX - box.left, y: e.clientY - box.top };
  }

  /// A click or tap: picks the seat when seats are big enough to aim at, else zooms in there.
  press(point, pointerType) {
    const C = SeatCanvas;
    const enough = pointerType === "mouse" ? C.PICK_MOUSE : C.PICK_TOUCH;
    if (this.pitch < enough) return this.zoomTo(Math.max(this.pitch * 3, this.touchLike.matches ? 35 : 25), point.x, point.y);
    const index = this.seatAt(point.x, point.y);
    if (index < 0) return;
    this.cursor = index;
    this.showCursor = false;
    this.redraw();
    this.options.onPick(index);
  }

  listen() {
    const canvas = this.canvas;
    canvas.addEventListener("pointerdown", (e) => {
      if (e.button !== 0) return;
      canvas.setPointerCapture(e.pointerId);
      this.pointers.set(e.pointerId, this.local(e));
      this.showCursor = false;
      const points = [...this.pointers.values()];
      if (points.length === 1) {
        this.gesture = { kind: "drag", start: points[0], last: points[0], moved: false };
      } else if (points.length === 2) {
        this.gesture = { kind: "pinch", distance: Math.hypot(points[0].x - points[1].x, points[0].y - points[1].y) || 1, pitch: this.pitch, middle: middle(points) };
      }
    });
    canvas.addEventListener("pointermove", (e) => {
      const point = this.local(e);
      if (!this.pointers.has(e.pointerId)) {
        if (e.pointerType === "mouse") this.hover(point);
        return;
      }
      this.pointers.set(e.pointerId, point);
      const g = this.gesture;
      if (!g) return;
      if (g.kind === "drag") {
        if (!g.moved && Math.hypot(point.x - g.start.x, point.y - g.start.y) < 6) return;
        g.moved = true;
        canvas.classList.add("dragging");
        this.panBy(point.x - g.last.x, point.y - g.last.y);
        g.last = point;
      } else if (this.pointers.size === 2) {
        const points = [...this.pointers.values()];
        const now = middle(points);
        this.panBy(now.x - g.middle.x, now.y - g.middle.y);
        g.middle = now;
        this.zoomTo(g.pitch * Math.hypot(points[0].x - points[1].x, points[0].y - points[1].y) / g.distance, now.x, now.y);
      }
    });
    const end = (e) => {
      if (!this.pointers.delete(e.pointerId)) return;
      const g = this.gesture;
      if (e.type === "pointerup" && g && g.kind === "drag" && !g.moved) this.press(this.local(e), e.pointerType);
      // After a pinch, the finger left on the screen drags on from where it is.
      const left = [...this.pointers.values()];
      this.gesture = left.length === 1 ? { kind: "drag", start: left[0], last: left[0], moved: true } : null;
      canvas.classList.remove("dragging");
    };
    canvas.addEventListener("pointerup", end);
    canvas.addEventListener("pointercancel", end);
    canvas.addEventListener("pointerleave", (e) => { if (e.pointerType === "mouse" && !this.pointers.size) this.hover(null); });
    canvas.addEventListener("wheel", (e) => {
      e.preventDefault();
      const lines = e.deltaMode === 1 ? 16 : e.deltaMode === 2 ? this.height : 1;
      const point = this.local(e);
      this.zoomBy(Math.exp(-e.deltaY * lines * 0.002), point.x, point.y);
    }, { passive: false });
    canvas.addEventListener("keydown", (e) => this.key(e));
    canvas.addEventListener("focus", () => {
      // Reached from the keyboard: the cursor is ringed and its seat named.
      if (!canvas.matches(":focus-visible")) return;
      this.showCursor = true;
      this.redraw();
      this.options.onPoint(this.cursor, true);
    });
    canvas.addEventListener("blur", () => this.redraw());
    new ResizeObserver(() => { if (this.canvas.clientWidth !== this.width) this.resize(false); }).observe(canvas.parentElement);
    this.watchDensity();
  }

  /// A window moved to a screen of another density redraws crisply there.
  watchDensity() {
    matchMedia(`(resolution: ${devicePixelRatio || 1}dppx)`).addEventListener("change", () => {
      this.resize(false);
      this.watchDensity();
    }, { once: true });
  }

  hover(point) {
    const index = point ? this.seatAt(point.x, point.y) : -1;
    const aimable = this.pitch >= SeatCanvas.PICK_MOUSE;
    this.canvas.classList.toggle("over-seat", aimable && index >= 0);
    if (index !== this.pointed) {
      this.pointed = index;
      this.options.onPoint(aimable ? index : -1, false);
    }
  }

  key(e) {
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      this.showCursor = true;
      this.redraw();
      return this.options.onPick(this.cursor);
    }
    if (e.key === "+" || e.key === "=") return e.preventDefault(), this.zoomAroundCursor(1.5);
    if (e.key === "-" || e.key === "_") return e.preventDefault(), this.zoomAroundCursor(1 / 1.5);
    const next = this.layout.neighbour(this.cursor, e.key);
    if (next === null) return;
    e.preventDefault();
    this.showCursor = true;
    this.moveCursor(next, true);
  }

  zoomAroundCursor(factor) {
    const box = this.localBox(this.cursor);
    const inSight = box.x >= 0 && box.x <= this.width && box.y >= 0 && box.y <= this.height;
    if (inSight) this.zoomBy(factor, box.x + box.size / 2, box.y + box.size / 2);
    else this.zoomBy(factor);
  }
}

function middle(points) {
  return { x: (points[0].x + points[1].x) / 2, y: (points[0].y + points[1].y) / 2 };
}
