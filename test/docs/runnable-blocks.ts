/**
 * The runnable shell blocks of a Markdown file: the commands a page promises work, which
 * test/docs/operations.spec.ts runs (docs/operations.md, "How this guide is tested").
 *
 * The marker is in the fence's info string, after the language, so a renderer still highlights
 * the block as shell and shows nothing of the marker:
 *
 *   ```sh runnable                 the block must exit 0
 *   ```sh runnable exits=0,1       the block may exit with any of these codes
 *   ```text output                 right after a runnable block (blank lines between allowed):
 *                                  each non-empty line must appear in what the block printed
 *
 * A block that may exit non-zero must have an output block: otherwise a misspelled flag (which
 * exits 1 too) would pass unseen. Fences are parsed here rather than by a Markdown library: only
 * top-level ``` fences are used on these pages, and no Markdown parser is a dependency.
 */

export interface RunnableBlock {
  /** The file and the line of the opening fence, for failure messages. */
  where: string;
  script: string;
  exits: number[];
  /** Lines that must each appear in the block's output (stdout and stderr). */
  expected: string[];
}

interface Fence {
  line: number;
  info: string[];
  body: string;
}

function fences(markdown: string): Array<Fence | 'prose'> {
  const out: Array<Fence | 'prose'> = [];
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(.*)$/.exec(lines[i]!);
    if (!open) {
      if (lines[i]!.trim() !== '') out.push('prose');
      continue;
    }
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !/^```\s*$/.test(lines[i]!); i++) body.push(lines[i]!);
    if (i >= lines.length) throw new Error(`line ${start + 1}: a fence that is never closed`);
    out.push({ line: start + 1, info: open[1]!.trim().split(/\s+/).filter(Boolean), body: body.join('\n') });
  }
  return out;
}

/** The runnable blocks of one file, in order; throws on a marker it does not understand. */
export function runnableBlocks(file: string, markdown: string): RunnableBlock[] {
  const parts = fences(markdown);
  const blocks: RunnableBlock[] = [];
  parts.forEach((part, k) => {
    if (part === 'prose' || !part.info.includes('runnable')) {
      if (part !== 'prose' && part.info[1] === 'output' && !(parts[k - 1] !== 'prose' && (parts[k - 1] as Fence | undefined)?.info.includes('runnable'))) {
        throw new Error(`${file}:${part.line}: an output block must follow a runnable block`);
      }
      return;
    }
    const where = `${file}:${part.line}`;
    if (part.info[0] !== 'sh' && part.info[0] !== 'bash') throw new Error(`${where}: a runnable block is sh or bash, not ${part.info[0]}`);
    let exits = [0];
    for (const word of part.info.slice(1)) {
      if (word === 'runnable') continue;
      const m = /^exits=(\d+(?:,\d+)*)$/.exec(word);
      if (!m) throw new Error(`${where}: unknown marker word ${JSON.stringify(word)} (runnable, exits=0,1)`);
      exits = m[1]!.split(',').map(Number);
    }
    const next = parts[k + 1];
    const expected = next !== undefined && next !== 'prose' && next.info[0] === 'text' && next.info[1] === 'output' ? next.body.split('\n').map((l) => l.trim()).filter(Boolean) : [];
    if (exits.some((c) => c !== 0) && expected.length === 0) {
      throw new Error(`${where}: a block that may exit non-zero needs a \`\`\`text output block after it (a misspelled flag exits non-zero too)`);
    }
    blocks.push({ where, script: part.body, exits, expected });
  });
  return blocks;
}
