// One lint configuration for the whole repository; `npm run check` runs it with tsc and prettier.
import js from "@eslint/js";
import { defineConfig } from "eslint/config";
import tseslint from "typescript-eslint";

const koffi = { name: "koffi", message: "koffi is only used inside loader/." };

/**
 * Rooms and what each may import (DESIGN.md's layout table). Every room not listed as allowed is
 * forbidden, so a new room must be added here deliberately.
 */
export const ROOMS = {
  loader: [],
  maps: ["loader"],
  policy: ["maps"],
  cni: ["loader", "maps"],
  agent: ["loader", "maps", "policy"],
  ctl: ["loader", "maps", "policy"],
  lab: ["loader", "maps", "policy"],
};

function boundaries() {
  const all = Object.keys(ROOMS);
  return Object.entries(ROOMS).map(([room, allowed]) => {
    const forbidden = all.filter((r) => r !== room && !allowed.includes(r));
    return {
      files: [`${room}/**/*.ts`],
      rules: {
        "no-restricted-imports": [
          "error",
          {
            paths: room === "loader" ? [] : [koffi],
            patterns: forbidden.map((r) => ({
              group: [`**/${r}/**`, `**/${r}`],
              message:
                `${room}/ may import only ${allowed.length > 0 ? allowed.map((x) => `${x}/`).join(", ") : "nothing of ours"}` +
                ` (DESIGN.md's layout): a contract two rooms share lives once in the lowest room both may import.`,
            })),
          },
        ],
      },
    };
  });
}

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
  // Import boundaries (DESIGN.md: who may import whom). test/lint/boundaries.test.ts proves each bites.
  ...boundaries(),
  {
    files: ["test/**/*.ts"],
    rules: {
      "@typescript-eslint/no-non-null-assertion": "off",
      "@typescript-eslint/no-unused-expressions": "off",
    },
  },
);
