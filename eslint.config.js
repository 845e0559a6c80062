// One lint configuration for the whole repository; `npm run check` runs it with tsc and prettier.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["dist/**", "node_modules/**", "vagrant/**", "**/*.cjs"] },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: { allowDefaultProject: ["*.js", "scripts/*.mjs"] }, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      "@typescript-eslint/no-floating-promises": "error",
      "@typescript-eslint/switch-exhaustiveness-check": "error",
      "@typescript-eslint/restrict-template-expressions": ["error", { allowNumber: true, allowBoolean: true, allowNullish: true }],
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "no-restricted-imports": ["error", { paths: [{ name: "koffi", message: "koffi is only used inside loader/." }] }],
    },
  },
  {
    files: ["loader/**/*.ts"],
    rules: { "no-restricted-imports": "off" },
  },
  {
    files: ["cni/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        { paths: [{ name: "koffi", message: "koffi is only used inside loader/." }], patterns: [{ group: ["**/agent/**"], message: "cni/ never imports agent/: shared contracts live in maps/ or loader/." }] },
      ],
    },
  },
  {
    files: ["agent/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        { paths: [{ name: "koffi", message: "koffi is only used inside loader/." }], patterns: [{ group: ["**/cni/**"], message: "agent/ never imports cni/: shared contracts live in maps/ or loader/." }] },
      ],
    },
  },
  {
    files: ["loader/**/*.ts", "maps/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        { patterns: [{ group: ["**/agent/**", "**/cni/**"], message: "loader/ and maps/ import nothing of cni/ or agent/." }] },
      ],
    },
  },
  {
    files: ["loader/**/*.ts"],
    rules: {
      "no-restricted-imports": ["error", { patterns: [{ group: ["**/maps/**", "**/agent/**", "**/cni/**"], message: "loader/ imports nothing of ours." }] }],
    },
  },
  {
    files: ["test/**/*.ts"],
    rules: { "@typescript-eslint/no-non-null-assertion": "off", "@typescript-eslint/no-unused-expressions": "off" },
  },
);
