import { describe, expect, it } from 'vitest';
import { meaningVeto } from './guard.js';

/** Vetoed both ways round, with a reason naming the family. */
function expectVeto(a: string, b: string, family: string): void {
  expect(meaningVeto(a, b), `${a} / ${b}`).toMatch(new RegExp(`^${family} differs?: `));
  expect(meaningVeto(b, a), `${b} / ${a}`).toMatch(new RegExp(`^${family} differs?: `));
}

describe('meaningVeto', () => {
  it.each([
    ['How do I reset my password?', 'how can I reset my password'],
    ['Please turn on dark mode', 'Turn on dark mode!'],
    ["What's the difference between let and const?", 'What is the difference between const and let?'],
    ['Reset my password', 'reset my password please'],
    ['How Do I Reset My Password', 'how do i reset my password'],
    ['How do I use Docker compose?', 'how do i use docker compose'],
    ['What time zone is Berlin in?', 'Berlin: what time zone is it in?'],
    ['Why does getUser() return null?', 'why does getUser return null'],
    ['Enable dark mode', 'Turn on dark mode'],
    ['How do I login?', 'How do I log in?'],
    ['Give me five ideas', 'Give me 5 ideas'],
    ['Give me twenty-five ideas', 'give me 25 ideas'],
    ['Convert 1,000 USD to EUR', 'Convert 1000 USD to EUR'],
    ['What is the daily limit?', 'What is the limit per day?'],
    ['Which one is best?', 'Which is the best?'],
    ['Show me how to hide the toolbar', 'How do I hide the toolbar?'],
    ['- Explain JSON', 'Explain JSON'],
  ])('lets a paraphrase through: %s / %s', (a, b) => {
    expect(meaningVeto(a, b)).toBeUndefined();
    expect(meaningVeto(b, a)).toBeUndefined();
  });

  it('vetoes a difference in negation', () => {
    expectVeto('Can I cancel my order?', "Can't I cancel my order?", 'negation');
    expectVeto('I can log in', 'I cannot log in', 'negation');
    expectVeto('Is the API key required?', 'Is the API key not required?', 'negation');
    expectVeto('Deploy with tests', 'Deploy without tests', 'negation');
    expectVeto('Why does it always crash', 'Why does it never crash', 'negation');
    expectVeto("Why doesn't the build pass", 'Why doesnt the build pass ever not', 'negation');
  });

  it('vetoes different sides of an opposite pair, naming both words', () => {
    expect(meaningVeto('Turn on dark mode', 'Turn off dark mode')).toBe('polarity differs: "Turn on" vs "Turn off"');
    expect(meaningVeto('How do I enable 2FA?', 'How do I disable 2FA?')).toBe('polarity differs: "enable" vs "disable"');
    expectVeto('Enable dark mode', 'Turn dark mode off', 'polarity');
    expectVeto('Keep notifications on', 'Keep notifications off', 'polarity');
    expectVeto('How do I start the server?', 'How do I stop the server?', 'polarity');
    expectVeto('How do I add a user to the team?', 'How do I remove a user from the team?', 'polarity');
    expectVeto('Sort by date ascending', 'Sort by date descending', 'polarity');
    expectVeto('Is the maximum batch size 100?', 'Is the minimum batch size 100?', 'polarity');
    expectVeto('Run the migration before the deploy', 'Run the migration after the deploy', 'polarity');
    expectVeto('How do I upload a file?', 'How do I download a file?', 'polarity');
    expectVeto('Set the flag to true', 'Set the flag to false', 'polarity');
  });

  it('vetoes phrasal particles and negating prefixes', () => {
    expect(meaningVeto('How do I log in?', 'How do I log out?')).toBe('polarity differs: "log in" vs "log out"');
    expectVeto('How do I sign up?', 'How do I sign in?', 'polarity');
    expectVeto('How do I log in?', 'How do I sign out?', 'polarity');
    expectVeto('Where is the login button?', 'Where is the logout button?', 'polarity');
    expectVeto('Unlock the door', 'Lock the door', 'polarity');
    expectVeto('Is this input valid?', 'Is this input invalid?', 'polarity');
    expectVeto('Why did the client connect?', 'Why did the client disconnect?', 'polarity');
    expectVeto('How do I mute my microphone?', 'How do I unmute my microphone?', 'polarity');
    expectVeto('How do I scale up my cluster?', 'How do I scale down my cluster?', 'polarity');
    expectVeto('Why is the cluster scaling up?', 'Why is the cluster scaling down?', 'polarity');
  });

  it('vetoes different numbers, spelled or not, versions and model names', () => {
    expect(meaningVeto('Set the timeout to 30 seconds', 'Set the timeout to 60 seconds')).toBe('numbers differ: "30" vs "60"');
    expectVeto('Install Python 3.11', 'Install Python 3.12', 'numbers');
    expectVeto('Give me five ideas', 'Give me six ideas', 'numbers');
    expectVeto('Give me five ideas', 'Give me ideas', 'numbers');
    expectVeto('Compare gpt-4o and claude', 'Compare gpt-4 and claude', 'numbers');
    expectVeto('What is 15% of 80?', 'What is 15% of 90?', 'numbers');
    expectVeto('Set the temperature to -5', 'Set the temperature to 5', 'numbers');
    expectVeto('What is the third step?', 'What is the fourth step?', 'numbers');
    expectVeto('Two hundred users', 'Three hundred users', 'numbers');
  });

  it('vetoes different dates and times', () => {
    expect(meaningVeto('What is the weather today?', 'What is the weather tomorrow?')).toBe('dates differ: "today" vs "tomorrow"');
    expectVeto('Book a table for next week', 'Book a table for last week', 'dates');
    expectVeto('Is the office open on Monday?', 'Is the office open on Friday?', 'dates');
    expectVeto('Show invoices from January', 'Show invoices from February', 'dates');
    expectVeto('What is the limit per minute?', 'What is the limit per hour?', 'dates');
    expectVeto('Meet at 3 pm', 'Meet at 3 am', 'dates');
    expectVeto('Will it rain in May 2025?', 'Will it rain in June 2025?', 'dates');
  });

  it('vetoes different named entities, acronyms and quoted strings', () => {
    expect(meaningVeto('Flights from Boston to Paris', 'Flights from Boston to London')).toBe('entities differ: "Paris" vs "London"');
    expectVeto('Is AWS cheaper?', 'Is GCP cheaper?', 'entities');
    expectVeto('How do I use Stripe with Sluice?', 'How do I use PayPal with Sluice?', 'entities');
    expectVeto('What does "idempotent" mean?', 'What does "immutable" mean?', 'entities');
    expectVeto("Translate 'good luck' to Spanish", "Translate 'good job' to Spanish", 'entities');
  });

  it('vetoes different code identifiers, whatever their form', () => {
    expect(meaningVeto('Why does getUser() return null?', 'Why does getUsers() return null?')).toBe('code differs: "getUser()" vs "getUsers()"');
    expectVeto('What does the --force flag do?', 'What does the --dry-run flag do?', 'code');
    expectVeto('Read src/index.ts and explain it', 'Read src/main.ts and explain it', 'code');
    expectVeto('What does `user_id` mean?', 'What does `userId` mean?', 'code');
    expectVeto('Why is max_tokens ignored?', 'Why is max_retries ignored?', 'code');
    expectVeto('How do I call os.path.join?', 'How do I call os.path.split?', 'code');
    expectVeto('Fetch https://example.com/a', 'Fetch https://example.com/b', 'code');
    expectVeto('What does `npm ci` do?', 'What does `npm install` do?', 'code');
  });

  it('stays linear on hostile input: 2000 characters of one repeated pattern each come back', () => {
    for (const unit of ['(', 'a', "'", '"a ', '0', 'a.', '1,', "n't ", 'aB', '-', 'turn on ', '`x', 'a_', '/a', '--a ', '1 ', 'Aa ', 'on ']) {
      const text = unit.repeat(Math.ceil(2000 / unit.length)).slice(0, 2000);
      expect(meaningVeto(text, `${text.slice(0, -1)}x`)).not.toBeNull();
    }
  });
});
