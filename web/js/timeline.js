// One conversation's loaded log, keyed by seq: a push, a sync page and a send answer can all
// deliver the same entry and it is kept once. Edits, recalls, reactions and transcripts are
// folded into the entry they target.

export const CONTENT_KINDS = new Set(['text', 'image', 'file', 'voice']);
export const SHOWN_KINDS = new Set([...CONTENT_KINDS, 'system']);

export class Timeline {
  constructor() {
    this.bySeq = new Map();
    this.shown = []; // seqs of entries shown, ascending
    this.minSeq = Infinity; // lowest loaded seq
    this.maxSeq = 0; // every seq up to this one is loaded
    this.hasOlder = true;
    this.pending = []; // local sends not yet stored, in order
    this.version = 0;
  }

  /** Adds an entry; answers whether it was new. Changes to earlier entries are folded in. */
  ingest(entry) {
    if (this.bySeq.has(entry.seq)) {
      // A history page carries the current state of a message: take it.
      if (SHOWN_KINDS.has(entry.kind)) this.bySeq.set(entry.seq, { ...this.bySeq.get(entry.seq), ...entry, _v: (this.bySeq.get(entry.seq)._v || 0) + 1 });
      return false;
    }
    this.bySeq.set(entry.seq, entry);
    this.minSeq = Math.min(this.minSeq, entry.seq);
    while (this.bySeq.has(this.maxSeq + 1)) this.maxSeq += 1;
    if (SHOWN_KINDS.has(entry.kind)) insertSorted(this.shown, entry.seq);
    else this.applyChange(entry);
    if (entry.client_msg_id) this.pending = this.pending.filter((p) => p.client_msg_id !== entry.client_msg_id);
    this.version += 1;
    return true;
  }

  applyChange(entry) {
    const target = this.bySeq.get(entry.target_seq);
    if (!target) return; // older than what is loaded: its history page will carry the state
    const next = { ...target, _v: (target._v || 0) + 1 };
    if (entry.kind === 'edit') {
      next.text = entry.text;
      next.edited_at = entry.created_at;
    } else if (entry.kind === 'recall') {
      next.recalled = true;
      next.text = null;
      next.file = null;
    } else if (entry.kind === 'transcript') {
      next.transcript = entry.text;
    } else if (entry.kind === 'reaction') {
      const reactions = (target.reactions || []).map((r) => ({ ...r, user_ids: [...r.user_ids] }));
      let reaction = reactions.find((r) => r.emoji === entry.emoji);
      if (entry.op === 'remove') {
        if (reaction && reaction.user_ids.includes(entry.sender_id)) {
          reaction.user_ids = reaction.user_ids.filter((id) => id !== entry.sender_id);
          reaction.count = reaction.user_ids.length;
        }
      } else {
        if (!reaction) reactions.push((reaction = { emoji: entry.emoji, count: 0, user_ids: [] }));
        if (!reaction.user_ids.includes(entry.sender_id)) {
          reaction.user_ids.push(entry.sender_id);
          reaction.count = reaction.user_ids.length;
        }
      }
      next.reactions = reactions.filter((r) => r.count > 0);
    } else {
      return;
    }
    this.bySeq.set(target.seq, next);
  }
}

function insertSorted(list, seq) {
  if (!list.length || list[list.length - 1] < seq) return list.push(seq);
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (list[mid] < seq) lo = mid + 1;
    else hi = mid;
  }
  list.splice(lo, 0, seq);
}
