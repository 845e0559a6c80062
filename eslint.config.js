// One lint configuration for the whole repository; `npm run check` runs it with tsc and prettier.
import js from "@eslint/js";
import { defineConfig } from "eslint/config";
import tseslint from "typescript-eslint";

const koffi = { name: "koffi", message: "koffi is only used inside loader/." };

export default defineConfig(
  { ignores: ["dist/**", "node_modules/**", "vagrant/**", "**/*.cjs"] },
  js.configs.recommended,
  tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        projectService: { allowDefaultProject: ["*.js", "scripts/*.mjs"] },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      "@typescript-eslint/no-floating-promises": "error",
      "@typescript-eslint/switch-exhaustiveness-check": "error",
      "@typescript-eslint/restrict-template-expressions": [
        "error",
        { allowNumber: true, allowBoolean: true, allowNullish: true },
      ],
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      // @kubernetes/client-node's models are classes, but what the API returns (and what we send) is
      // plain JSON of the same shape; the library itself treats them as data.
      "@typescript-eslint/no-unsafe-class-instance-assignment": "off",
      "no-restricted-imports": ["error", { paths: [koffi] }],
    },
  },
  // Import boundaries (DESIGN.md: who may import whom).
  {
    files: ["cni/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          paths: [koffi],
          patterns: [
            {
              group: ["**/agent/**"],
              message: "cni/ never imports agent/: shared contracts live in maps/ or loader/.",
            },
          ],
        },
      ],
    },
  },
  {
    files: ["agent/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          paths: [koffi],
          patterns: [
            {
              group: ["**/cni/**"],
              message: "agent/ never imports cni/: shared contracts live in maps/ or loader/.",
            },
          ],
        },
      ],
    },
  },
  {
    files: ["maps/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          paths: [koffi],
          patterns: [{ group: ["**/agent/**", "**/cni/**"], message: "maps/ imports only loader/." }],
        },
      ],
    },
  },
  {
    files: ["loader/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            {
              group: ["**/maps/**", "**/agent/**", "**/cni/**"],
              message: "loader/ imports nothing of ours.",
            },
          ],
        },
      ],
    },
  },
  {
    files: ["test/**/*.ts"],
    rules: {
      "@typescript-eslint/no-non-null-assertion": "off",
      "@typescript-eslint/no-unused-expressions": "off",
    },
  },
);
