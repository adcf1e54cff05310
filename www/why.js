// The page's explanations, drawing only: a text's words coloured by their effect on one label, and a
// survey's words that put answers under each label. zeroshot.js's explain() computes the effects:
// a word's effect on a label is the label's score minus its score on the same pair without that word.

const TOWARDS = [47, 98, 208]; // the accent blue: the word pushed the score up
const AGAINST = [214, 88, 34]; // orange: it pushed the score down
const signed = (x) => `${x >= 0 ? '+' : '−'}${Math.abs(x).toFixed(3)}`;
/** A word's effect on `label`, or undefined where it has none (only its own keys count: a label
 * may be called "constructor"). */
const effectOf = (word, label) => (Object.hasOwn(word.effects, label) ? word.effects[label] : undefined);
const element = (tag, props = {}, ...children) => {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
};

/** A word's shade: its direction's colour, as strong as its share of the largest effect on the label. */
function shade(effect, largest) {
  const [r, g, b] = effect >= 0 ? TOWARDS : AGAINST;
  const alpha = largest > 0 ? 0.12 + 0.5 * (Math.abs(effect) / largest) : 0;
  return `rgba(${r}, ${g}, ${b}, ${alpha.toFixed(3)})`;
}

/** What one word did to `label`, in words (the tooltip, and the screen reader's table). */
function said(word, label) {
  const effect = effectOf(word, label);
  if (effect === undefined) return `“${word.text}”: not in ${label}'s pair (the text was cut before it, or the word has no token of its own)`;
  return `“${word.text}”: ${signed(effect)} ${effect >= 0 ? 'towards' : 'against'} ${label}`;
}

/** The explanation's text with each word marked by its effect on `label`, the legend, the words that
 * pushed most each way, and every word's number in a table: meaning never rests on colour alone. */
export function renderExplanation(view, explanation, label) {
  const { sequence, words } = explanation;
  const largest = Math.max(0, ...words.map((w) => Math.abs(effectOf(w, label) ?? 0)));
  const text = element('p', { className: 'why-text' });
  let at = 0;
  for (const w of words) {
    text.append(sequence.slice(at, w.start));
    const effect = effectOf(w, label);
    const mark = element('span', { className: effect === undefined ? 'word uncounted' : 'word', title: said(w, label) }, w.text);
    if (effect !== undefined) mark.style.background = shade(effect, largest);
    text.append(mark);
    at = w.end;
  }
  text.append(sequence.slice(at));
  view.replaceChildren(text, legend(label), strongest(words, label), table(words, label));
}

function legend(label) {
  const swatch = (rgb, what) => element('span', { className: 'swatch-wrap' },
    element('span', { className: 'swatch', style: `background: rgba(${rgb.join(', ')}, 0.5)` }), what);
  return element('p', { className: 'why-legend' }, swatch(TOWARDS, `towards ${label}`), swatch(AGAINST, `against ${label}`),
    element('span', { className: 'hint', textContent: 'The stronger the colour, the more the score moves without that word. Hover a word for its number.' }));
}

/** The three words that pushed most towards the label and the three most against it. */
function strongest(words, label) {
  const counted = words.filter((w) => effectOf(w, label) !== undefined).sort((a, b) => effectOf(b, label) - effectOf(a, label));
  const list = (ws) => ws.map((w) => `${w.text} (${signed(effectOf(w, label))})`).join(', ') || 'none';
  const up = counted.filter((w) => effectOf(w, label) > 0).slice(0, 3);
  const down = counted.filter((w) => effectOf(w, label) < 0).reverse().slice(0, 3);
  return element('p', { className: 'why-top' }, element('strong', { textContent: 'Most towards: ' }), list(up),
    element('strong', { textContent: ' · most against: ' }), list(down));
}

function table(words, label) {
  const rows = words.map((w) => element('tr', {}, element('td', { textContent: w.text }),
    element('td', { className: 'num', textContent: effectOf(w, label) === undefined ? 'not in the pair' : signed(effectOf(w, label)) })));
  const head = element('tr', {}, element('th', { textContent: 'word' }), element('th', { textContent: `effect on ${label}` }));
  return element('details', { className: 'why-all' }, element('summary', { textContent: 'Every word’s effect' }),
    element('table', {}, element('thead', {}, head), element('tbody', {}, ...rows)));
}

/** A word as the survey view groups it: lower case, punctuation and symbols at either end stripped
 * ("Refund," and "refund" are one); a word of punctuation or emoji alone stays as it is. */
export function wordKey(text) {
  const bare = text.toLowerCase().replace(/^[\p{P}\p{S}]+|[\p{P}\p{S}]+$/gu, '');
  return bare || text;
}

/**
 * For each label, the words that pushed answers under it: over the answers `bucketsOf(row)` puts under
 * the label, each word (grouped by wordKey) with a positive effect on it, its summed effect and the
 * answers it pushed (row indices), best first: [{label, words: [{key, sum, rows}]}].
 */
export function wordsByLabel(rows, labels, bucketsOf) {
  const out = new Map(labels.map((l) => [l, new Map()]));
  rows.forEach((row, i) => {
    if (!row.words) return;
    for (const label of bucketsOf(row).filter((b) => out.has(b))) {
      const words = out.get(label);
      for (const w of row.words) {
        const effect = effectOf(w, label);
        if (!(effect > 0)) continue;
        const key = wordKey(w.text);
        const entry = words.get(key) ?? words.set(key, { key, sum: 0, rows: new Set() }).get(key);
        entry.sum += effect;
        entry.rows.add(i);
      }
    }
  });
  return labels.map((label) => ({ label, words: [...out.get(label).values()].sort((a, b) => b.sum - a.sum) }));
}

/** The top `most` words of each label as toggle buttons (data-label, data-word), under a heading each. */
export function renderWordsByLabel(view, groups, picked, most = 8) {
  view.replaceChildren(...groups.map(({ label, words }) => {
    const chips = words.slice(0, most).map((w) => {
      const b = element('button', { type: 'button', textContent: `${w.key} · ${w.rows.size} answer${w.rows.size === 1 ? '' : 's'} · ${signed(w.sum)}` });
      Object.assign(b.dataset, { label, word: w.key });
      b.title = `“${w.key}” pushed ${w.rows.size} answer${w.rows.size === 1 ? '' : 's'} towards ${label}; its effects sum to ${signed(w.sum)}`;
      b.setAttribute('aria-pressed', String(picked?.label === label && picked?.key === w.key));
      return b;
    });
    const none = element('span', { className: 'hint', textContent: 'no word pushed an answer here' });
    return element('div', { className: 'words-group' }, element('h3', { textContent: label }),
      element('div', { className: 'chips', role: 'group' }, ...(chips.length ? chips : [none])));
  }));
}

/** Every label's words as CSV rows: label, word, answers, summed effect. */
export function wordRows(groups) {
  return groups.flatMap(({ label, words }) => words.map((w) => [label, w.key, w.rows.size, w.sum]));
}
