import { strict as assert } from "node:assert";
import { ApiError } from "../../../lab/apiserver/errors.js";
import {
  formatLabelSelector,
  matchesFields,
  matchesLabels,
  parseFieldSelector,
  parseLabelSelector,
} from "../../../lab/apiserver/selectors.js";

function matches(selector: string, labels: Record<string, string>): boolean {
  return matchesLabels(parseLabelSelector(selector), labels);
}

function rejects400(fn: () => unknown): void {
  assert.throws(
    fn,
    (err: unknown) => err instanceof ApiError && err.code === 400 && err.reason === "BadRequest",
  );
}

describe("lab apiserver: label selectors", () => {
  it("parses every operator", () => {
    const s = parseLabelSelector("a=1, b==2,c!=3,d in (x, y),e notin (z),f,!g,h>5,i<7");
    assert.deepEqual(
      s.requirements.map((r) => [r.key, r.operator, r.values]),
      [
        ["a", "=", ["1"]],
        ["b", "=", ["2"]],
        ["c", "!=", ["3"]],
        ["d", "in", ["x", "y"]],
        ["e", "notin", ["z"]],
        ["f", "exists", []],
        ["g", "!", []],
        ["h", "gt", ["5"]],
        ["i", "lt", ["7"]],
      ],
    );
  });

  it("matches equality, inequality and existence like the real server", () => {
    assert.equal(matches("", {}), true);
    assert.equal(matches("app=web", { app: "web" }), true);
    assert.equal(matches("app==web", { app: "db" }), false);
    assert.equal(matches("app!=web", {}), true, "!= matches when the label is absent");
    assert.equal(matches("app!=web", { app: "web" }), false);
    assert.equal(matches("app", { app: "" }), true);
    assert.equal(matches("!app", { app: "x" }), false);
    assert.equal(matches("!app", {}), true);
    assert.equal(matches("app=", { app: "" }), true, "empty value");
    assert.equal(matches("app=", {}), false);
  });

  it("matches set-based requirements", () => {
    assert.equal(matches("env in (prod,stage)", { env: "stage" }), true);
    assert.equal(matches("env in (prod,stage)", {}), false);
    assert.equal(matches("env notin (prod)", {}), true, "notin matches when absent");
    assert.equal(matches("env notin (prod)", { env: "prod" }), false);
    assert.equal(matches("tier in (a),env notin (prod)", { tier: "a", env: "dev" }), true);
    assert.equal(matches("n>5", { n: "6" }), true);
    assert.equal(matches("n>5", { n: "x" }), false);
    assert.equal(matches("n<5", {}), false);
  });

  it("accepts prefixed keys", () => {
    assert.equal(matches("app.kubernetes.io/name=web", { "app.kubernetes.io/name": "web" }), true);
    assert.equal(
      matches("kubernetes.io/metadata.name in (kube-system)", {
        "kubernetes.io/metadata.name": "kube-system",
      }),
      true,
    );
  });

  it("rejects bad syntax and invalid keys/values with 400", () => {
    rejects400(() => parseLabelSelector("a=b=c"));
    rejects400(() => parseLabelSelector("a in b"));
    rejects400(() => parseLabelSelector("a in ()"));
    rejects400(() => parseLabelSelector("a in (b"));
    rejects400(() => parseLabelSelector("-bad=x"));
    rejects400(() => parseLabelSelector("a=-bad-"));
    rejects400(() => parseLabelSelector("a>b"));
    rejects400(() => parseLabelSelector(",a"));
    rejects400(() => parseLabelSelector("a b"));
    rejects400(() => parseLabelSelector("UPPER.example.com/x=y"));
  });

  it("formats structured selectors like metav1.FormatLabelSelector", () => {
    assert.equal(formatLabelSelector({}), "<none>");
    assert.equal(formatLabelSelector(undefined), "<none>");
    assert.equal(
      formatLabelSelector({
        matchLabels: { b: "2", a: "1" },
        matchExpressions: [
          { key: "c", operator: "In", values: ["x", "y"] },
          { key: "d", operator: "DoesNotExist" },
        ],
      }),
      "a=1,b=2,c in (x,y),!d",
    );
  });
});

describe("lab apiserver: field selectors", () => {
  const fields: Record<string, string> = {
    "metadata.name": "web",
    "spec.nodeName": "",
    "metadata.namespace": "a,b=c",
  };
  const get = (f: string): string | undefined => fields[f];

  it("parses =, == and != terms", () => {
    const s = parseFieldSelector("metadata.name=web,spec.nodeName!=n1,metadata.namespace==x");
    assert.deepEqual(s.requirements, [
      { field: "metadata.name", operator: "=", value: "web" },
      { field: "spec.nodeName", operator: "!=", value: "n1" },
      { field: "metadata.namespace", operator: "=", value: "x" },
    ]);
  });

  it("matches, treating a missing value as empty", () => {
    assert.equal(matchesFields(parseFieldSelector("metadata.name=web"), get), true);
    assert.equal(matchesFields(parseFieldSelector("metadata.name!=web"), get), false);
    assert.equal(matchesFields(parseFieldSelector("spec.nodeName="), get), true);
    assert.equal(matchesFields(parseFieldSelector("status.podIP="), get), true);
    assert.equal(matchesFields(parseFieldSelector(""), get), true);
  });

  it("unescapes \\, \\= and \\\\", () => {
    const s = parseFieldSelector("metadata.namespace=a\\,b\\=c");
    assert.deepEqual(s.requirements, [{ field: "metadata.namespace", operator: "=", value: "a,b=c" }]);
    assert.equal(matchesFields(s, get), true);
  });

  it("rejects malformed terms with 400", () => {
    rejects400(() => parseFieldSelector("metadata.name"));
    rejects400(() => parseFieldSelector("=x"));
    rejects400(() => parseFieldSelector("a=b=c"));
    rejects400(() => parseFieldSelector("a=\\q"));
  });
});
