/**
 * `pacer completion bash|zsh`: a shell completion script, generated from pacer's own commander
 * tree (every subcommand, sub-subcommand, flag and fixed choice), so it cannot drift from the CLI.
 *
 * The script is static: a TAB runs a few shell `case` lookups, not pacer. Libraries such as
 * @bomb.sh/tab, @pnpm/tabtab and omelette call the program back at every TAB instead, and pacer
 * would then have to load every subcommand (the agent, the API server and the simulator take
 * seconds) to answer. Generating the script loads them all once; `pacer --version` and
 * `pacer class ls` still load only what they did. The one call back is for class names
 * (`pacer class get <TAB>`): `pacer completion class-names` asks the API, only when a token is
 * at hand (PACER_TOKEN or --token-file on the line), and says nothing when it cannot.
 */
import { Command, type Argument, type Option } from 'commander';
import { PacerClient, withGlobalOptions, type GlobalOptions } from './client.js';
import { out, run } from './output.js';

/** One command as the completion script sees it. */
export interface CompletionNode {
  /** The words leading to it, from `pacer`; its aliases lead to it too. */
  path: string[];
  aliases: string[];
  subcommands: CompletionNode[];
  /** Every spelling of every flag: --rate, -h. */
  flags: string[];
  /** Flags whose next word is their value (not a command, a flag or an argument). */
  valued: string[];
  /** Fixed values of a valued flag (`--role`: admin editor …). */
  flagChoices: Record<string, string[]>;
  /** What its first argument may be: fixed choices, or the API's class names. */
  firstArgument: string[] | 'class-names' | undefined;
}

/** The completion tree of a commander command and everything under it, as `pacer --help` shows them. */
export function completionTree(cmd: Command, parent: string[] = []): CompletionNode {
  const help = cmd.createHelp();
  const path = [...parent, cmd.name()];
  const options = help.visibleOptions(cmd);
  const flags = options.flatMap((o) => spellings(o));
  const valued = options.filter((o) => o.required || o.optional).flatMap((o) => spellings(o));
  const flagChoices = Object.fromEntries(options.filter((o) => o.argChoices).flatMap((o) => spellings(o).map((f) => [f, o.argChoices!])));
  const first = (cmd.registeredArguments as readonly Argument[])[0];
  const firstArgument = first?.argChoices ?? (path[1] === 'class' && first?.name() === 'name' ? 'class-names' : undefined);
  const subcommands = help.visibleCommands(cmd).map((c) => completionTree(c, path));
  // `pacer class help <TAB>`: commander's implicit help command takes a sibling's name.
  const helpNode = subcommands.find((s) => s.path[s.path.length - 1] === 'help' && s.subcommands.length === 0);
  if (helpNode) helpNode.firstArgument = subcommands.filter((s) => s !== helpNode).map((s) => s.path[s.path.length - 1]!);
  return {
    path,
    aliases: cmd.aliases(),
    subcommands,
    flags,
    valued,
    flagChoices,
    firstArgument,
  };
}

function spellings(o: Option): string[] {
  return [o.short, o.long].filter((f): f is string => f !== undefined);
}

function* walk(node: CompletionNode): Generator<CompletionNode> {
  yield node;
  for (const sub of node.subcommands) yield* walk(sub);
}

/** A word list in single quotes: commander's names and flags never hold a quote, but a choice might. */
function quoted(words: readonly string[]): string {
  return `'${words.join(' ').replace(/'/g, `'\\''`)}'`;
}

/** Every way a command's path can be typed: `pacer token ls` and `pacer token list`. */
function typedPaths(node: CompletionNode, tree: CompletionNode): string[] {
  let paths = [[tree.path[0]!]];
  let level = tree;
  for (const name of node.path.slice(1)) {
    level = level.subcommands.find((s) => s.path[s.path.length - 1] === name)!;
    paths = paths.flatMap((p) => [name, ...level.aliases].map((n) => [...p, n]));
  }
  return paths.map((p) => p.join(' '));
}

/**
 * The lookups both shells share (the same `case` syntax works in bash and zsh): for a command
 * path, its subcommands, flags, valued flags and first argument; for a path and a flag, its choices.
 */
function lookups(tree: CompletionNode): string {
  const spec: string[] = [];
  const choices: string[] = [];
  for (const node of walk(tree)) {
    const pattern = typedPaths(node, tree).map((p) => `'${p}'`).join('|');
    const words = node.subcommands.flatMap((s) => [s.path[s.path.length - 1]!, ...s.aliases]);
    const first = node.firstArgument === 'class-names' ? ['@class-names'] : (node.firstArgument ?? []);
    spec.push(`    ${pattern}) _pacer_words=${quoted(words)} _pacer_flags=${quoted(node.flags)} _pacer_valued=${quoted(node.valued)} _pacer_first=${quoted(first)} ;;`);
    for (const [flag, values] of Object.entries(node.flagChoices)) {
      choices.push(`    ${typedPaths(node, tree).map((p) => `'${p} ${flag}'`).join('|')}) _pacer_reply=${quoted(values)} ;;`);
    }
  }
  return [
    '# Sets _pacer_words (subcommands), _pacer_flags, _pacer_valued (flags that take a value) and',
    '# _pacer_first (what the first argument may be; @class-names: ask the API) for a command path.',
    '_pacer_spec() {',
    "  _pacer_words='' _pacer_flags='' _pacer_valued='' _pacer_first=''",
    '  case "$1" in',
    ...spec,
    '  esac',
    '}',
    '',
    '# Sets _pacer_reply to the fixed values of flag $2 of command path $1 (empty: any value).',
    '_pacer_flag_choices() {',
    "  _pacer_reply=''",
    '  case "$1 $2" in',
    ...choices,
    '  esac',
    '}',
  ].join('\n');
}

/**
 * Reads the words before the cursor (the shell's arrays, passed as arguments) into the command
 * path, the number of arguments given, whether the cursor is on a flag's value, and the --api and
 * --token-file given: the same walk for both shells. The syntax below is common to bash and zsh.
 */
const WALK = `_pacer_walk() {
  local word skip=0 keep=''
  _pacer_path=pacer _pacer_nargs=0 _pacer_value_of='' _pacer_api_args=()
  _pacer_spec "$_pacer_path"
  for word in "$@"; do
    if [[ $word == '=' ]]; then skip=1; continue; fi
    if (( skip )); then
      skip=0
      [[ -n $keep ]] && _pacer_api_args+=("$keep" "$word")
      continue
    fi
    case "$word" in
      --*=*) ;;
      -*)
        if [[ " $_pacer_valued " == *" $word "* ]]; then
          skip=1
          keep=''
          [[ $word == --api || $word == --token-file ]] && keep=$word
        fi ;;
      *)
        if (( _pacer_nargs == 0 )) && [[ " $_pacer_words " == *" $word "* ]]; then
          _pacer_path="$_pacer_path $word"
          _pacer_spec "$_pacer_path"
        else
          _pacer_nargs=$((_pacer_nargs + 1))
        fi ;;
    esac
  done
  (( skip )) && _pacer_value_of=yes
  return 0
}

# The API's class names, one a line; nothing without a token at hand or when the API cannot answer.
_pacer_class_names() {
  [[ -n \${PACER_TOKEN-} || " \${_pacer_api_args[*]} " == *' --token-file '* ]] || return 0
  "$1" completion class-names "\${_pacer_api_args[@]}" 2>/dev/null
}`;

/** The bash completion script. */
export function bashScript(tree: CompletionNode): string {
  return `# bash completion for pacer, generated by \`pacer completion bash\` from pacer's own commands.
# Load it in this shell:      source <(pacer completion bash)
# Or once, for every shell:   pacer completion bash > ~/.local/share/bash-completion/completions/pacer
# (needs the bash-completion package). Regenerate it after upgrading pacer.

${lookups(tree)}

${WALK}

_pacer() {
  local cur=\${COMP_WORDS[COMP_CWORD]} prev=\${COMP_WORDS[COMP_CWORD-1]} candidates
  COMPREPLY=()
  _pacer_walk "\${COMP_WORDS[@]:1:COMP_CWORD-1}"
  [[ $cur == '=' ]] && return 0 # --flag=<TAB>: bash would replace the "="; --flag <TAB> completes
  if [[ -n $_pacer_value_of ]]; then
    # A flag's value: its fixed values, or else bash's default (file names).
    [[ $prev == '=' ]] && prev=\${COMP_WORDS[COMP_CWORD-2]}
    _pacer_flag_choices "$_pacer_path" "$prev"
    [[ -n $_pacer_reply ]] && COMPREPLY=($(compgen -W "$_pacer_reply" -- "$cur"))
    return 0
  fi
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$_pacer_flags" -- "$cur"))
    return 0
  fi
  (( _pacer_nargs == 0 )) || return 0
  candidates=$_pacer_words
  if [[ $_pacer_first == @class-names ]]; then
    candidates="$candidates $(_pacer_class_names "\${COMP_WORDS[0]}")"
  else
    candidates="$candidates $_pacer_first"
  fi
  COMPREPLY=($(compgen -W "$candidates" -- "$cur"))
  return 0
}
complete -o default -F _pacer pacer
`;
}

/** The zsh completion function: the same lookups and walk, answered with compadd. */
export function zshScript(tree: CompletionNode): string {
  return `#compdef pacer
compdef _pacer pacer
# zsh completion for pacer, generated by \`pacer completion zsh\` from pacer's own commands.
# Install:  pacer completion zsh > "\${fpath[1]}/_pacer"   then start a new shell (compinit).
# Or load it in this shell (after compinit):  source <(pacer completion zsh)
# Regenerate it after upgrading pacer.

${lookups(tree)}

${WALK}

_pacer() {
  emulate -L zsh
  local cur=\${words[CURRENT]} prev=\${words[CURRENT-1]}
  local -a candidates
  _pacer_walk "\${(@)words[2,CURRENT-1]}"
  if [[ -n $_pacer_value_of ]]; then
    _pacer_flag_choices "$_pacer_path" "$prev"
    if [[ -n $_pacer_reply ]]; then compadd -- \${=_pacer_reply}; else _files; fi
    return
  fi
  if [[ $cur == -* ]]; then
    compadd -- \${=_pacer_flags}
    return
  fi
  (( _pacer_nargs == 0 )) || { _files; return; }
  candidates=(\${=_pacer_words})
  if [[ $_pacer_first == @class-names ]]; then
    candidates+=(\${(f)"$(_pacer_class_names "\${words[1]}")"})
  else
    candidates+=(\${=_pacer_first})
  fi
  compadd -- $candidates
}

# Autoloaded from fpath, this file is the body of _pacer's first call: complete now too. Sourced, it only defines.
if [[ \${funcstack[1]-} == _pacer ]]; then
  _pacer "$@"
fi
`;
}

/** Every pacer command, each loaded (the completion script needs them all). */
async function pacerTree(): Promise<CompletionNode> {
  const { SUBCOMMANDS } = await import('./subcommands.js');
  const program = new Command('pacer').version('0');
  for (const sub of await Promise.all(Object.values(SUBCOMMANDS).map((s) => s.load()))) program.addCommand(sub);
  return completionTree(program);
}

interface ClassPage {
  items: Array<{ name: string }>;
  next: string | null;
}

/** Class names for the scripts, every page of GET /v1/classes; silent on any failure (a TAB must not print errors). */
async function printClassNames(o: GlobalOptions): Promise<void> {
  try {
    const client = PacerClient.fromOptions(o);
    const names: string[] = [];
    let after: string | null = null;
    do {
      const page: ClassPage = (await client.get<ClassPage>(`/v1/classes${after === null ? '' : `?after=${encodeURIComponent(after)}`}`)).body;
      names.push(...page.items.map((c) => c.name));
      after = page.next === after ? null : page.next; // the same page twice would never end
    } while (after !== null);
    if (names.length > 0) out(names.join('\n'));
  } catch {
    // No token, no API, a refusal: no names to offer.
  }
}

export function completionCommand(): Command {
  const script = (shell: 'bash' | 'zsh') =>
    new Command(shell).description(`print the ${shell} completion script`).action(
      run(async () => {
        const tree = await pacerTree();
        process.stdout.write(shell === 'bash' ? bashScript(tree) : zshScript(tree));
      }),
    );
  return new Command('completion')
    .description('print a shell completion script: source <(pacer completion bash), or pacer completion zsh > "${fpath[1]}/_pacer"')
    .addCommand(script('bash'))
    .addCommand(script('zsh'))
    .addCommand(withGlobalOptions(new Command('class-names')).description('class names from the API, one a line, for the completion scripts').action(run(printClassNames)), { hidden: true });
}
