// A virtualised list of rows of varying height: only the rows in (and just around) the viewport
// are in the DOM. Heights are measured once rendered and remembered by key; until then an
// estimate stands in. The list keeps its place when rows are added above (older history), and
// sticks to the bottom while the reader is there.

const OVERSCAN_PX = 600;

export class VList {
  constructor(scroller, { render, estimate, onNearTop, onScroll, canAnchor = () => true }) {
    this.scroller = scroller;
    this.canAnchor = canAnchor;
    this.renderRow = render;
    this.estimate = estimate;
    this.onNearTop = onNearTop;
    this.onScrollCb = onScroll;
    this.items = [];
    this.heights = new Map();
    this.nodes = new Map(); // key -> element
    this.offsets = [0];
    this.stickToBottom = true;
    this.spacer = document.createElement('div');
    this.spacer.className = 'vlist-spacer';
    scroller.append(this.spacer);
    this.frame = 0;
    scroller.addEventListener('scroll', () => {
      this.stickToBottom = this.distanceFromBottom() < 8;
      // Scroll events come once per frame: drawing now (not in a later frame) never shows a gap.
      this.draw();
      if (scroller.scrollTop < OVERSCAN_PX && this.onNearTop) this.onNearTop();
      this.onScrollCb?.();
    }, { passive: true });
    new ResizeObserver(() => this.schedule()).observe(scroller);
  }

  distanceFromBottom() {
    return this.scroller.scrollHeight - this.scroller.scrollTop - this.scroller.clientHeight;
  }

  /** Replaces the items, keeping the first visible row where it was (or the bottom in view). */
  setItems(items) {
    const anchor = this.stickToBottom ? null : this.anchor();
    this.items = items;
    this.layout();
    if (this.stickToBottom) this.scroller.scrollTop = this.scroller.scrollHeight;
    else if (anchor) this.restore(anchor);
    this.draw();
  }

  anchor() {
    const top = this.scroller.scrollTop;
    let index = this.indexAt(top);
    // Rows that stay put when items are added above (a header, a day divider) cannot hold the place.
    while (index < this.items.length - 1 && !this.canAnchor(this.items[index])) index += 1;
    const item = this.items[index];
    return item ? { key: item.key, delta: this.offsets[index] - top } : null;
  }

  restore(anchor) {
    const index = this.items.findIndex((item) => item.key === anchor.key);
    if (index >= 0) this.scroller.scrollTop = this.offsets[index] - anchor.delta;
  }

  layout() {
    const n = this.items.length;
    const offsets = new Array(n + 1);
    offsets[0] = 0;
    for (let i = 0; i < n; i += 1) {
      const item = this.items[i];
      offsets[i + 1] = offsets[i] + (this.heights.get(item.key) ?? this.estimate(item));
    }
    this.offsets = offsets;
    this.spacer.style.height = `${offsets[n]}px`;
  }

  /** Index of the row covering pixel `y` (binary search over the offsets). */
  indexAt(y) {
    let lo = 0;
    let hi = this.items.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.offsets[mid] <= y) lo = mid;
      else hi = mid - 1;
    }
    return Math.max(0, lo);
  }

  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.draw();
    });
  }

  /** Re-measures rows (an image loaded, a reaction appeared). */
  remeasure() {
    this.schedule();
  }

  draw(depth = 0) {
    const top = this.scroller.scrollTop;
    const height = this.scroller.clientHeight;
    const first = this.indexAt(Math.max(0, top - OVERSCAN_PX));
    const last = this.indexAt(top + height + OVERSCAN_PX);
    const wanted = new Set();
    for (let i = first; i <= last && i < this.items.length; i += 1) {
      const item = this.items[i];
      wanted.add(item.key);
      let node = this.nodes.get(item.key);
      if (node && node._version !== item.version) {
        node.remove();
        node = null;
      }
      if (!node) {
        node = this.renderRow(item);
        node._item = item;
        node._version = item.version;
        node.classList.add('vrow');
        this.nodes.set(item.key, node);
        this.scroller.append(node);
      }
      node._item = item;
      node.style.transform = `translateY(${this.offsets[i]}px)`;
    }
    for (const [key, node] of this.nodes) {
      if (!wanted.has(key) && !node.contains(document.activeElement)) {
        node.remove();
        this.nodes.delete(key);
      }
    }
    // Measure what is on screen; if estimates were off, lay out again and keep the view steady.
    let changed = false;
    for (const key of wanted) {
      const measured = this.nodes.get(key).offsetHeight;
      if (measured && this.heights.get(key) !== measured) {
        this.heights.set(key, measured);
        changed = true;
      }
    }
    if (changed && depth < 3) {
      const anchor = this.stickToBottom ? null : this.anchor();
      this.layout();
      if (this.stickToBottom) this.scroller.scrollTop = this.scroller.scrollHeight;
      else if (anchor) this.restore(anchor);
      this.draw(depth + 1);
    }
  }

  scrollToBottom() {
    this.stickToBottom = true;
    this.scroller.scrollTop = this.scroller.scrollHeight;
    this.draw();
  }

  /** Scrolls a row into the middle of the view; answers whether it exists. */
  scrollToKey(key) {
    const index = this.items.findIndex((item) => item.key === key);
    if (index < 0) return false;
    this.stickToBottom = false;
    this.scroller.scrollTop = this.offsets[index] - this.scroller.clientHeight / 3;
    this.draw();
    return true;
  }

  rowCount() {
    return this.nodes.size;
  }
}
