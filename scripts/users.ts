// npm run users -- add NAME --role ROLE [--trader-id ID] [--password-stdin] | list | disable NAME
import readline from 'node:readline';
import { loadConfig } from '../server/config';
import { migrate } from '../server/db/migrate';
import { addUser, disableUser, listUsers, Role, UserError } from '../server/auth/users';
import { fail, openToolDb, parseCli } from './cli';

const usage = `usage:
  npm run users -- add NAME --role admin|trader|analyst|service [--trader-id ID] [--password-stdin]
  npm run users -- list
  npm run users -- disable NAME
The password is read from standard input with --password-stdin, otherwise asked for at a prompt.
Works on DATABASE_URL, or on the embedded database in DATA_DIR (default ./data; the demo's is
DATA_DIR=./data/demo). Stop the server first: the embedded database admits one process at a time.
Which database it opened is said on stderr.`;

const { values, positionals } = parseCli(process.argv.slice(2), {
  role: { type: 'string' },
  'trader-id': { type: 'string' },
  'password-stdin': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
}, usage);

if (values.help) { process.stdout.write(`${usage}\n`); process.exit(0); }
const [command, name, ...extra] = positionals;
if (!command || !['add', 'list', 'disable'].includes(command) || extra.length || ((command === 'add' || command === 'disable') && !name) || (command === 'list' && name)) {
  fail(`${command ? `unknown or incomplete command: ${positionals.join(' ')}` : 'no command given'}\n\n${usage}`, 2);
}
let role: Role | undefined;
if (command === 'add') {
  const parsed = Role.safeParse(values.role);
  if (!parsed.success) fail(`--role ${values.role === undefined ? 'is required' : parsed.error.issues[0]!.message}\n\n${usage}`, 2);
  role = parsed.data;
}

async function readPassword(): Promise<string> {
  if (values['password-stdin']) {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
  }
  if (!process.stdin.isTTY) fail('no terminal to ask for the password: use --password-stdin', 2);
  const rl = readline.createInterface({ input: process.stdin, output: process.stdout, terminal: true });
  const ask = (q: string) => new Promise<string>((resolve) => {
    const write = (rl as unknown as { _writeToOutput: (s: string) => void });
    rl.question(q, resolve);
    write._writeToOutput = (s: string) => { if (s.includes(q)) process.stdout.write(q); };
  });
  const first = await ask('password: ');
  process.stdout.write('\n');
  const second = await ask('again: ');
  process.stdout.write('\n');
  rl.close();
  if (first !== second) fail('the two passwords differ');
  return first;
}

try {
  const password = command === 'add' ? await readPassword() : '';
  const config = loadConfig();
  const db = await openToolDb('users', config);
  try {
    await migrate(db);
    if (command === 'add') {
      const user = await addUser(db, { username: name!, password, role: role!, trader_id: values['trader-id'] ?? null });
      process.stdout.write(`added ${user.username} (${user.role}${user.trader_id ? `, trader_id ${user.trader_id}` : ''})\n`);
    } else if (command === 'list') {
      const users = await listUsers(db);
      const rows = users.map((u) => [u.username, u.role, u.trader_id ?? '', u.disabled_at ? `disabled ${u.disabled_at.toISOString()}` : 'active']);
      const widths = [0, 1, 2, 3].map((i) => Math.max(...[['username', 'role', 'trader_id', 'status'], ...rows].map((r) => r[i]!.length)));
      for (const r of [['username', 'role', 'trader_id', 'status'], ...rows]) process.stdout.write(`${r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()}\n`);
    } else {
      if (!(await disableUser(db, name!))) fail(`no active user ${name}`);
      process.stdout.write(`disabled ${name}; their sessions and live streams are ended, and running servers refuse their credentials from now on\n`);
    }
  } finally {
    await db.close();
  }
} catch (error) {
  if (error instanceof UserError) fail(`users: ${error.message}`, 2);
  fail(`users: ${(error as Error).message}`);
}
