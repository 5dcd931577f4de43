// Type-aware lint over the production code, the scripts and the tests; run by `npm run lint` (and so
// by `npm test`). A rule that stays on is one whose findings get fixed, not silenced.
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

const unusedVars = { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_', ignoreRestSiblings: true };
const testFiles = ['**/*.spec.ts', '**/testing.ts', '**/fixtures.ts', '**/*.scenario.ts', '**/*-env.ts', 'test/**/*.ts'];

export default defineConfig(
  { ignores: ['**/node_modules/**', '**/.sluice/**', '**/dist/**', '**/.turbo/**', '**/coverage/**'] },
  {
    files: ['libs/*/src/**/*.ts', 'services/*/src/**/*.ts', 'scripts/**/*.ts', 'test/**/*.ts'],
    extends: [js.configs.recommended, tseslint.configs.recommendedTypeChecked],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      // handlers and fastify hooks are async by contract (a Promise-returning signature; fastify tells
      // an async hook from a callback hook by it), whether or not this one awaits anything
      '@typescript-eslint/require-await': 'off',
      // passing on a caught `unknown` is a rethrow, as only-throw-error already allows
      '@typescript-eslint/prefer-promise-reject-errors': ['error', { allowThrowingUnknown: true }],
      // a leading underscore says "unused on purpose" (`_request`, `_exhaustive`, `{ override: _previous, ...rest }`)
      '@typescript-eslint/no-unused-vars': ['error', unusedVars],
    },
  },
  {
    // Kysely's own advice: a migration is frozen in time, so it types the database as Kysely<any>
    files: ['services/ledger/src/migrate.ts', 'services/ledger/src/migrations/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    files: testFiles,
    rules: {
      // tests read HTTP and JSON bodies as `any` on purpose: the expect() that follows is the check
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
    },
  },
);
