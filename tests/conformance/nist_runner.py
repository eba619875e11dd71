#!/usr/bin/env python3
"""NIST XDS testkit conformance runner for hienode.

Replays the NIST toolkit's testkit tests (testkit/tests/<id>/<section>/testplan.xml) against a running node's
/xds/registry and /xds/repository endpoints, the way the toolkit's xdstest2 engine interprets them (read from
github.com/usnistgov/iheos-toolkit2, test-engine): per step it loads the MetadataFile, applies UseReport values,
converts ebRIM 2.1 metadata to 3.0, assigns the patient id (unless NoPatientId), fresh uniqueIds (unless
NoAssignUids) and UUIDs for symbolic ids (AssignUuids), resolves UseId / UseObjectRef / UseXPath links to earlier
steps, sends the transaction (SOAP 1.2 + WS-Addressing, MTOM for ITI-41/43), and checks ExpectedStatus,
ExpectedErrorMessage, ExpectedErrorCode, ExpectedContents, ReferenceDocument and the XPath Asserts. Reports
(Report elements, <id>_uid / <id>_uuid) are kept per step for later UseReport / UseId references; tests that
another test depends on (e.g. 12346, the query test data) are run first, once.

Patient ids: each top-level test gets its own fresh patient id (and a second one for the "15817b" feed), made
unique per run and registered with `hienode patient add` before use; AltPatientId / NewPatientId /
CreateNewPatientId behave as in the toolkit (alternate and new ids are NOT registered, a created one is).

Output: one line per step `TEST/SECTION/STEP PASS|FAIL|SKIP reason`, one line per test, and a final
`N passed, N failed, N skipped` (steps). Exit 0 when every test in --expected passed, 1 otherwise, 2 on usage.

Python 3 standard library only.
"""
import argparse
import base64
import copy
import hashlib
import http.client
import os
import re
import subprocess
import sys
import time
import urllib.parse
import uuid
import xml.etree.ElementTree as ET

LAST_POST = [0.0]  # time of the last request sent (see $now$)

# ---------------------------------------------------------------------------------------------------------------
# Namespaces and well-known identifiers

NS_SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
NS_SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
NS_WSA = "http://www.w3.org/2005/08/addressing"
NS_RIM3 = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
NS_LCM3 = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"
NS_QUERY3 = "urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0"
NS_RS3 = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
NS_RIM2 = "urn:oasis:names:tc:ebxml-regrep:rim:xsd:2.1"
NS_RS2 = "urn:oasis:names:tc:ebxml-regrep:registry:xsd:2.1"
NS_QUERY2 = "urn:oasis:names:tc:ebxml-regrep:query:xsd:2.1"
NS_XDSB = "urn:ihe:iti:xds-b:2007"
NS_XOP = "http://www.w3.org/2004/08/xop/include"
NS_XML = "http://www.w3.org/XML/1998/namespace"

for _p, _u in (("soapenv", NS_SOAP12), ("wsa", NS_WSA), ("rim", NS_RIM3), ("lcm", NS_LCM3), ("query", NS_QUERY3),
               ("rs", NS_RS3), ("xdsb", NS_XDSB), ("xop", NS_XOP), ("rim2", NS_RIM2), ("rs2", NS_RS2)):
    ET.register_namespace(_p, _u)

ACTION = {
    "r": "urn:ihe:iti:2007:RegisterDocumentSet-b",
    "sq": "urn:ihe:iti:2007:RegistryStoredQuery",
    "pr": "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b",
    "ret": "urn:ihe:iti:2007:RetrieveDocumentSet",
    "mu": "urn:ihe:iti:2010:UpdateDocumentSet",
    "rm": "urn:ihe:iti:2010:DeleteDocumentSet",
}

UUID_DE_PATIENTID = "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427"
UUID_SS_PATIENTID = "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446"
UUID_FOL_PATIENTID = "urn:uuid:f64ffdf0-4b97-4e06-b79f-a52b38ec2f8a"
UUID_DE_UNIQUEID = "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab"
UUID_SS_UNIQUEID = "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8"
UUID_FOL_UNIQUEID = "urn:uuid:75df8f67-9973-4fbe-a900-df66cefecc5a"
UUID_SS_CLASS = "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd"
UUID_FOL_CLASS = "urn:uuid:d9d542f3-6cc4-48b6-8870-ea235fbc94c2"

IHE_ASSOC_TYPES = {"RPLC", "XFRM", "APND", "XFRM_RPLC", "signs", "IsSnapshotOf", "UpdateAvailabilityStatus",
                   "SubmitAssociation"}
EB_STATUS = "urn:oasis:names:tc:ebxml-regrep:StatusType:"
RESPONSE_STATUS_NS = {"Success": "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType",
                      "Failure": "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType",
                      "PartialSuccess": "urn:ihe:iti:2007:ResponseStatusType"}

# Patient identity feed tests that only report a patient id: which of the test's ids they stand for.
PIF_TESTS = {"15817": "pid", "15818": "pid", "15817b": "pid2", "15804": "pid"}


def local(tag):
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def nsuri(tag):
    return tag[1:].split("}", 1)[0] if isinstance(tag, str) and tag.startswith("{") else ""


def children(el, name=None):
    return [c for c in el if isinstance(c.tag, str) and (name is None or local(c.tag) == name)]


def first(el, name):
    for c in children(el, name):
        return c
    return None


def text_of(el):
    return "".join(el.itertext()) if el is not None else ""


class StepError(Exception):
    """The step cannot run (runner-side problem or unsatisfiable dependency); message says why."""

    def __init__(self, msg, skip=False):
        super().__init__(msg)
        self.skip = skip


# ---------------------------------------------------------------------------------------------------------------
# XPath 1.0 subset (enough for the testkit's Report, Assert and UseXPath expressions)

_TOKEN = re.compile(r"""\s*(?:
    (?P<num>\d+(?:\.\d*)?|\.\d+) |
    (?P<str>"[^"]*"|'[^']*') |
    (?P<op>//|::|!=|<=|>=|\.\.|[/()\[\]@,=<>|*.+-]) |
    (?P<name>[A-Za-z_][\w.\-]*(?::[A-Za-z_][\w.\-]*)?) |
    (?P<var>\$[\w\-]+\$?)
)""", re.X)


def xp_tokens(s):
    pos, out = 0, []
    s = s.strip()
    while pos < len(s):
        m = _TOKEN.match(s, pos)
        if not m or m.end() == pos:
            raise ValueError("XPath: cannot parse at %r" % s[pos:pos + 20])
        pos = m.end()
        for k in ("num", "str", "op", "name", "var"):
            v = m.group(k)
            if v is not None:
                out.append((k, v))
                break
    return out


class XNode:
    """An attribute or text node produced by a path (elements are ET elements)."""

    def __init__(self, kind, value, parent, name=""):
        self.kind, self.value, self.parent, self.name = kind, value, parent, name


class XPath:
    """Recursive-descent parser + evaluator over an ElementTree tree (parents found through a map)."""

    def __init__(self, expr):
        self.expr = expr
        self.toks = xp_tokens(expr)
        self.i = 0
        self.ast = self.p_or()
        if self.i != len(self.toks):
            raise ValueError("XPath: trailing input in %r" % expr)

    # parser -----------------------------------------------------------------------------------------------
    def peek(self, k=0):
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else (None, None)

    def take(self, val=None):
        t = self.peek()
        if val is not None and t[1] != val:
            raise ValueError("XPath: expected %r, found %r in %r" % (val, t[1], self.expr))
        self.i += 1
        return t

    def p_or(self):
        a = self.p_and()
        while self.peek() == ("name", "or"):
            self.take()
            a = ("or", a, self.p_and())
        return a

    def p_and(self):
        a = self.p_eq()
        while self.peek() == ("name", "and"):
            self.take()
            a = ("and", a, self.p_eq())
        return a

    def p_eq(self):
        a = self.p_rel()
        while self.peek()[1] in ("=", "!="):
            op = self.take()[1]
            a = ("cmp", op, a, self.p_rel())
        return a

    def p_rel(self):
        a = self.p_add()
        while self.peek()[1] in ("<", ">", "<=", ">="):
            op = self.take()[1]
            a = ("cmp", op, a, self.p_add())
        return a

    def p_add(self):
        a = self.p_unary()
        while self.peek()[0] == "op" and self.peek()[1] in ("+", "-"):
            op = self.take()[1]
            a = ("arith", op, a, self.p_unary())
        return a

    def p_unary(self):
        if self.peek() == ("op", "-"):
            self.take()
            return ("neg", self.p_unary())
        return self.p_union()

    def p_union(self):
        a = self.p_path()
        while self.peek() == ("op", "|"):
            self.take()
            a = ("union", a, self.p_path())
        return a

    def p_path(self):
        k, v = self.peek()
        if k in ("num", "str", "var") or (k == "op" and v == "(") or \
                (k == "name" and self.peek(1) == ("op", "(") and v not in ("text", "node")):
            prim = self.p_primary()
            preds = []
            while self.peek() == ("op", "["):
                preds.append(self.p_pred())
            steps = []
            if self.peek()[1] in ("/", "//"):
                steps = self.p_rel_steps()
            if not preds and not steps:
                return prim
            return ("filter", prim, preds, steps)
        absolute = False
        steps = []
        if v == "/":
            self.take()
            absolute = True
            if self.peek()[0] in ("name", "op") and self.peek()[1] in ("*", "@", ".", "..") or \
                    self.peek()[0] == "name":
                steps = self.p_steps_after()
            return ("path", True, steps)
        if v == "//":
            self.take()
            steps = [("descendant-or-self", "node", [])] + self.p_steps_after()
            return ("path", True, steps)
        steps = self.p_steps_after()
        return ("path", absolute, steps)

    def p_rel_steps(self):
        steps = []
        while self.peek()[1] in ("/", "//"):
            sep = self.take()[1]
            if sep == "//":
                steps.append(("descendant-or-self", "node", []))
            steps.append(self.p_step())
        return steps

    def p_steps_after(self):
        steps = [self.p_step()]
        steps += self.p_rel_steps()
        return steps

    def p_step(self):
        k, v = self.peek()
        if v == ".":
            self.take()
            return ("self", "node", [])
        if v == "..":
            self.take()
            return ("parent", "node", [])
        axis = "child"
        if v == "@":
            self.take()
            axis = "attribute"
        elif k == "name" and self.peek(1) == ("op", "::"):
            axis = self.take()[1]
            self.take("::")
        k, v = self.take()
        if v == "*":
            test = "*"
        elif k == "name" and self.peek() == ("op", "(") and v in ("text", "node"):
            self.take("(")
            self.take(")")
            test = v + "()"
        elif k == "name":
            test = v
        else:
            raise ValueError("XPath: bad step %r in %r" % (v, self.expr))
        preds = []
        while self.peek() == ("op", "["):
            preds.append(self.p_pred())
        return (axis, test, preds)

    def p_pred(self):
        self.take("[")
        e = self.p_or()
        self.take("]")
        return e

    def p_primary(self):
        k, v = self.take()
        if k == "num":
            return ("num", float(v))
        if k == "str":
            return ("str", v[1:-1])
        if k == "var":
            return ("str", v)
        if v == "(":
            e = self.p_or()
            self.take(")")
            return e
        name = v
        self.take("(")
        args = []
        if self.peek() != ("op", ")"):
            args.append(self.p_or())
            while self.peek() == ("op", ","):
                self.take()
                args.append(self.p_or())
        self.take(")")
        return ("call", name, args)

    # evaluator --------------------------------------------------------------------------------------------
    def evaluate(self, context, root=None):
        root = root if root is not None else context
        self.parents = {c: p for p in root.iter() for c in p}
        self.root = root
        return self.ev(self.ast, context, 1, 1)

    def string(self, context, root=None):
        return to_string(self.evaluate(context, root))

    def ev(self, n, ctx, pos, size):
        t = n[0]
        if t == "num" or t == "str":
            return n[1]
        if t == "or":
            return to_bool(self.ev(n[1], ctx, pos, size)) or to_bool(self.ev(n[2], ctx, pos, size))
        if t == "and":
            return to_bool(self.ev(n[1], ctx, pos, size)) and to_bool(self.ev(n[2], ctx, pos, size))
        if t == "cmp":
            return compare(n[1], self.ev(n[2], ctx, pos, size), self.ev(n[3], ctx, pos, size))
        if t == "arith":
            a, b = to_number(self.ev(n[2], ctx, pos, size)), to_number(self.ev(n[3], ctx, pos, size))
            return a + b if n[1] == "+" else a - b
        if t == "neg":
            return -to_number(self.ev(n[1], ctx, pos, size))
        if t == "union":
            a, b = self.ev(n[1], ctx, pos, size), self.ev(n[2], ctx, pos, size)
            return a + [x for x in b if x not in a]
        if t == "call":
            return self.call(n[1], n[2], ctx, pos, size)
        if t == "path":
            start = [self.root] if n[1] else [ctx]
            if n[1]:
                start = [DocRoot(self.root)]
            return self.steps(start, n[2])
        if t == "filter":
            v = self.ev(n[1], ctx, pos, size)
            if not isinstance(v, list):
                raise ValueError("XPath: predicate on a non-node-set")
            for p in n[2]:
                v = self.apply_pred(v, p)
            return self.steps(v, n[3])
        raise ValueError("XPath: internal %r" % (t,))

    def steps(self, nodes, steps):
        for axis, test, preds in steps:
            out = []
            seen = set()
            for nd in nodes:
                cand = [c for c in self.axis(nd, axis) if self.match(c, axis, test)]
                for p in preds:
                    cand = self.apply_pred(cand, p)
                for c in cand:
                    if id(c) not in seen:
                        seen.add(id(c))
                        out.append(c)
            nodes = out
        return nodes

    def apply_pred(self, nodes, pred):
        out = []
        size = len(nodes)
        for i, c in enumerate(nodes, 1):
            v = self.ev(pred, c, i, size)
            if isinstance(v, float):
                if v == i:
                    out.append(c)
            elif to_bool(v):
                out.append(c)
        return out

    def axis(self, nd, axis):
        if isinstance(nd, DocRoot):
            if axis == "child":
                return [nd.el]
            if axis in ("descendant-or-self", "descendant"):
                return ([nd] if axis == "descendant-or-self" else []) + list(nd.el.iter())
            if axis == "self":
                return [nd]
            return []
        if isinstance(nd, XNode):
            if axis == "self":
                return [nd]
            if axis == "parent":
                return [nd.parent]
            return []
        if axis == "child":
            kids = []
            if nd.text and nd.text.strip():
                kids.append(XNode("text", nd.text, nd))
            for c in nd:
                if isinstance(c.tag, str):
                    kids.append(c)
                if c.tail and c.tail.strip():
                    kids.append(XNode("text", c.tail, nd))
            return kids
        if axis == "attribute":
            return [XNode("attr", v, nd, k) for k, v in nd.attrib.items()]
        if axis == "descendant-or-self":
            return [x for x in nd.iter() if isinstance(x.tag, str)]
        if axis == "descendant":
            return [x for x in nd.iter() if isinstance(x.tag, str) and x is not nd]
        if axis == "self":
            return [nd]
        if axis == "parent":
            p = self.parents.get(nd)
            return [p] if p is not None else ([DocRoot(self.root)] if nd is self.root else [])
        if axis in ("ancestor", "ancestor-or-self"):
            out = [nd] if axis == "ancestor-or-self" else []
            p = self.parents.get(nd)
            while p is not None:
                out.append(p)
                p = self.parents.get(p)
            return out
        if axis in ("following-sibling", "preceding-sibling"):
            p = self.parents.get(nd)
            if p is None:
                return []
            sib = [c for c in p if isinstance(c.tag, str)]
            i = sib.index(nd)
            return sib[i + 1:] if axis == "following-sibling" else list(reversed(sib[:i]))
        raise ValueError("XPath: unsupported axis %s" % axis)

    def match(self, nd, axis, test):
        if test == "node()" or test == "node":
            return True
        if isinstance(nd, DocRoot):
            return False
        if test == "text()":
            return isinstance(nd, XNode) and nd.kind == "text"
        if axis == "attribute":
            if not isinstance(nd, XNode) or nd.kind != "attr":
                return False
            return test == "*" or local(nd.name) == test.split(":")[-1] and (":" in test or not nsuri(nd.name))
        if isinstance(nd, XNode):
            return False
        if test == "*":
            return True
        if ":" in test:  # prefixed names: compare local parts (the testkit uses local-name() anyway)
            return local(nd.tag) == test.split(":", 1)[1]
        return nd.tag == test

    def call(self, name, args, ctx, pos, size):
        a = [self.ev(x, ctx, pos, size) for x in args]
        if name == "local-name" or name == "name":
            nd = (a[0][0] if a and a[0] else None) if a else ctx
            if nd is None or isinstance(nd, DocRoot):
                return ""
            if isinstance(nd, XNode):
                return local(nd.name)
            return local(nd.tag)
        if name == "namespace-uri":
            nd = (a[0][0] if a and a[0] else None) if a else ctx
            return nsuri(nd.tag) if nd is not None and not isinstance(nd, (XNode, DocRoot)) else ""
        if name == "count":
            return float(len(a[0]))
        if name == "string":
            return to_string(a[0]) if a else to_string([ctx])
        if name == "concat":
            return "".join(to_string(x) for x in a)
        if name == "contains":
            return to_string(a[1]) in to_string(a[0])
        if name == "starts-with":
            return to_string(a[0]).startswith(to_string(a[1]))
        if name == "ends-with":
            return to_string(a[0]).endswith(to_string(a[1]))
        if name == "substring":
            s = to_string(a[0])
            start = round(to_number(a[1]))
            if len(a) > 2:
                end = start + round(to_number(a[2]))
                return "".join(ch for i, ch in enumerate(s, 1) if start <= i < end)
            return "".join(ch for i, ch in enumerate(s, 1) if i >= start)
        if name == "substring-before":
            s, t = to_string(a[0]), to_string(a[1])
            return s.split(t, 1)[0] if t in s else ""
        if name == "substring-after":
            s, t = to_string(a[0]), to_string(a[1])
            return s.split(t, 1)[1] if t in s else ""
        if name == "string-length":
            return float(len(to_string(a[0]) if a else to_string([ctx])))
        if name == "normalize-space":
            return " ".join((to_string(a[0]) if a else to_string([ctx])).split())
        if name == "not":
            return not to_bool(a[0])
        if name == "true":
            return True
        if name == "false":
            return False
        if name == "boolean":
            return to_bool(a[0])
        if name == "number":
            return to_number(a[0] if a else [ctx])
        if name == "position":
            return float(pos)
        if name == "last":
            return float(size)
        if name == "sum":
            return float(sum(to_number(string_value(x)) for x in a[0]))
        raise ValueError("XPath: unsupported function %s()" % name)


class DocRoot:
    def __init__(self, el):
        self.el = el


def string_value(nd):
    if isinstance(nd, XNode):
        return nd.value
    if isinstance(nd, DocRoot):
        return "".join(nd.el.itertext())
    return "".join(nd.itertext())


def to_string(v):
    if isinstance(v, list):
        return string_value(v[0]) if v else ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return str(int(v)) if v == int(v) else repr(v)
    return v


def to_number(v):
    if isinstance(v, float):
        return v
    if isinstance(v, bool):
        return 1.0 if v else 0.0
    try:
        return float(to_string(v).strip())
    except ValueError:
        return float("nan")


def to_bool(v):
    if isinstance(v, list):
        return len(v) > 0
    if isinstance(v, float):
        return v != 0 and v == v
    if isinstance(v, str):
        return len(v) > 0
    return bool(v)


def compare(op, a, b):
    def cmp1(x, y):
        if op in ("=", "!="):
            if isinstance(x, bool) or isinstance(y, bool):
                r = to_bool(x) == to_bool(y)
            elif isinstance(x, float) or isinstance(y, float):
                r = to_number(x) == to_number(y)
            else:
                r = to_string(x) == to_string(y)
            return r if op == "=" else not r
        x, y = to_number(x), to_number(y)
        return {"<": x < y, ">": x > y, "<=": x <= y, ">=": x >= y}[op]

    if isinstance(a, list) and isinstance(b, list):
        return any(cmp1(string_value(x), string_value(y)) for x in a for y in b)
    if isinstance(a, list):
        if isinstance(b, bool):
            return cmp1(to_bool(a), b)
        return any(cmp1(string_value(x) if not isinstance(b, float) else to_number(string_value(x)), b) for x in a)
    if isinstance(b, list):
        if isinstance(a, bool):
            return cmp1(a, to_bool(b))
        return any(cmp1(a, string_value(y) if not isinstance(a, float) else to_number(string_value(y))) for y in b)
    return cmp1(a, b)


def xpath_eval(expr, context, root=None):
    return XPath(" ".join(expr.split())).evaluate(context, root)


def xpath_string(expr, context, root=None):
    return to_string(xpath_eval(expr, context, root))


# ---------------------------------------------------------------------------------------------------------------
# Metadata: substitution, ebRIM 2.1 -> 3.0, id assignment

def replace_everywhere(root, old, new):
    """Linkage.replace_string_in_text_and_attributes: text and attribute values, skipping Report/UseReport/UseId
    and xdsb:Document contents. Returns the number of replacements."""
    n = 0

    def walk(el):
        nonlocal n
        ln = local(el.tag)
        if ln in ("Report", "UseReport", "UseId"):
            return
        if ln == "Document" and nsuri(el.tag) == NS_XDSB:
            return
        if el.text and old in el.text:
            el.text = el.text.replace(old, new)
            n += 1
        for k, v in list(el.attrib.items()):
            if old in v:
                el.attrib[k] = v.replace(old, new)
                n += 1
        for c in el:
            if isinstance(c.tag, str):
                walk(c)
            if c.tail and old in c.tail:
                c.tail = c.tail.replace(old, new)
                n += 1

    walk(root)
    return n


def is_v2(el):
    return any(nsuri(e.tag) in (NS_RIM2, NS_RS2, NS_QUERY2) for e in el.iter() if isinstance(e.tag, str))


V2_ORDER = ("Slot", "Name", "Description", "VersionInfo", "Classification", "ExternalIdentifier")
V3_OBJECT_TYPES = {
    "RegistryPackage": "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:RegistryPackage",
    "Association": "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:Association",
    "Classification": "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:Classification",
    "ExternalIdentifier": "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:ExternalIdentifier",
}


class V3Translator:
    """TranslateToV3 (registry-metadata): the toolkit's ebRIM 2.1 -> 3.0 translation. ObjectRefs are dropped,
    Classification/Association/ExternalIdentifier get an id when they have none ("id_N", remembered in
    self.generated), ExternalIdentifier gets registryObject = its parent's id, status/associationType get
    their namespaces, RegistryPackage/Association/Classification/ExternalIdentifier get their objectType,
    minor/majorVersion are dropped and children are put in the 3.0 order."""

    def __init__(self):
        self.n = 0
        self.generated = set()

    def new_id(self):
        self.n += 1
        i = "id_%d" % self.n
        self.generated.add(i)
        return i

    def copy(self, frm):
        name = local(frm.tag)
        if name == "ObjectRef":
            return None
        to = ET.Element("{%s}%s" % (NS_RIM3, name))
        for k, v in frm.attrib.items():
            kl = local(k)
            if kl in ("minorVersion", "majorVersion"):
                continue
            if kl == "status" and ":" not in v:
                v = EB_STATUS + v
            elif kl == "associationType" and ":" not in v:
                ns = "urn:ihe:iti:2007:AssociationType" if v in IHE_ASSOC_TYPES else \
                    "urn:oasis:names:tc:ebxml-regrep:AssociationType"
                v = ns + ":" + v
            if kl == "lang":
                k = "{%s}lang" % NS_XML
            to.set(k, v)
        if name in V3_OBJECT_TYPES:
            to.set("objectType", V3_OBJECT_TYPES[name])
        if name in ("Association", "Classification") and not to.get("id"):
            to.set("id", self.new_id())
        for att in V2_ORDER:
            for c in children(frm, att):
                x = self.copy(c)
                if att == "ExternalIdentifier":
                    if not x.get("id"):
                        x.set("id", self.new_id())
                    x.set("registryObject", frm.get("id", ""))
                to.append(x)
        for c in children(frm):
            if local(c.tag) in V2_ORDER or local(c.tag) == "ObjectRef":
                continue
            x = self.copy(c)
            if x is not None:
                to.append(x)
        if frm.text and frm.text.strip():
            to.text = frm.text
        return to

    def submit_objects_request(self, sor2):
        """v2 rs:SubmitObjectsRequest (LeafRegistryObjectList) -> lcm:SubmitObjectsRequest/rim:RegistryObjectList."""
        sor = ET.Element("{%s}SubmitObjectsRequest" % NS_LCM3)
        rol = ET.SubElement(sor, "{%s}RegistryObjectList" % NS_RIM3)
        lists = [e for e in sor2.iter() if local(e.tag) in ("LeafRegistryObjectList", "RegistryObjectList")]
        src = lists[0] if lists else sor2
        for o in children(src):
            x = self.copy(o)
            if x is not None:
                rol.append(x)
        return sor


def to_v3(el):
    """Returns (v3 element, generated ids). v3 input is deep-copied unchanged."""
    if not is_v2(el):
        return copy.deepcopy(el), set()
    t = V3Translator()
    if local(el.tag) == "SubmitObjectsRequest":
        return t.submit_objects_request(el), t.generated
    return t.copy(el), t.generated


def registry_objects(sor):
    """Top-level registry objects of a SubmitObjectsRequest / response (any version)."""
    for e in sor.iter():
        if local(e.tag) in ("RegistryObjectList", "LeafRegistryObjectList"):
            return children(e)
    return []


def ext_ids(obj, scheme):
    return [x for x in children(obj, "ExternalIdentifier") if x.get("identificationScheme") == scheme]


class Metadata:
    """Classification of the objects of a submission or query response the way the toolkit's Metadata does."""

    def __init__(self, root):
        self.root = root
        objs = registry_objects(root) if root is not None else []
        if not objs and root is not None:
            objs = [e for e in root.iter() if local(e.tag) in ("ExtrinsicObject", "RegistryPackage",
                                                                "Association", "ObjectRef", "Classification")]
        self.objects = objs
        self.eos = [o for o in objs if local(o.tag) == "ExtrinsicObject"]
        self.rps = [o for o in objs if local(o.tag) == "RegistryPackage"]
        self.assocs = [o for o in objs if local(o.tag) == "Association"]
        self.orefs = [o for o in objs if local(o.tag) == "ObjectRef"]
        cls = [o for o in objs if local(o.tag) == "Classification"]
        for rp in self.rps:
            cls += children(rp, "Classification")
        ss_ids = {c.get("classifiedObject") for c in cls if c.get("classificationNode") == UUID_SS_CLASS}
        fol_ids = {c.get("classifiedObject") for c in cls if c.get("classificationNode") == UUID_FOL_CLASS}
        self.sss = [r for r in self.rps if r.get("id") in ss_ids or
                    (r.get("id") not in fol_ids and ext_ids(r, UUID_SS_UNIQUEID))]
        self.fols = [r for r in self.rps if r not in self.sss and (r.get("id") in fol_ids or
                                                                  ext_ids(r, UUID_FOL_UNIQUEID))]


# ---------------------------------------------------------------------------------------------------------------
# SOAP / MTOM transport

def soap_envelope(action, to, body_xml):
    mid = "urn:uuid:%s" % uuid.uuid4()
    return ('<?xml version="1.0" encoding="UTF-8"?>'
            '<soapenv:Envelope xmlns:soapenv="%s" xmlns:wsa="%s"><soapenv:Header>'
            '<wsa:Action soapenv:mustUnderstand="1">%s</wsa:Action>'
            '<wsa:MessageID>%s</wsa:MessageID>'
            '<wsa:ReplyTo><wsa:Address>http://www.w3.org/2005/08/addressing/anonymous</wsa:Address></wsa:ReplyTo>'
            '<wsa:To soapenv:mustUnderstand="1">%s</wsa:To>'
            '</soapenv:Header><soapenv:Body>%s</soapenv:Body></soapenv:Envelope>'
            % (NS_SOAP12, NS_WSA, action, mid, to, body_xml))


def serialize(el):
    return ET.tostring(el, encoding="unicode")


class Response:
    def __init__(self, http_status, ctype, raw):
        self.http_status, self.ctype, self.raw = http_status, ctype, raw
        self.envelope = None
        self.body = None       # first element of soap Body
        self.fault = None      # fault text or None
        self.parts = {}        # Content-ID -> bytes (MTOM attachments)
        self.error = None      # transport / parse problem


def parse_multipart(ctype, raw):
    params = {}
    for p in ctype.split(";")[1:]:
        if "=" in p:
            k, v = p.split("=", 1)
            params[k.strip().lower()] = v.strip().strip('"')
    b = params.get("boundary")
    if not b:
        raise ValueError("multipart without boundary")
    delim = b"--" + b.encode()
    parts = []
    for chunk in raw.split(delim)[1:]:
        if chunk.startswith(b"--"):
            break
        chunk = chunk[2:] if chunk.startswith(b"\r\n") else chunk.lstrip(b"\n")
        hdr, _, body = chunk.partition(b"\r\n\r\n")
        if not _:
            hdr, _, body = chunk.partition(b"\n\n")
        if body.endswith(b"\r\n"):
            body = body[:-2]
        elif body.endswith(b"\n"):
            body = body[:-1]
        headers = {}
        for line in hdr.decode("latin-1").splitlines():
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        parts.append((headers, body))
    start = params.get("start")
    return parts, start


def soap_call(url, action, body_el, attachments=None, timeout=60):
    """POSTs body_el (and MTOM attachments {cid: (ctype, bytes)}) to url; returns a Response."""
    u = urllib.parse.urlsplit(url)
    env = soap_envelope(action, url, serialize(body_el)).encode("utf-8")
    if attachments is not None:
        bnd = "MIMEBoundary_%s" % uuid.uuid4().hex
        out = [b"--" + bnd.encode() + b"\r\n",
               b'Content-Type: application/xop+xml; charset=UTF-8; type="application/soap+xml"\r\n'
               b"Content-Transfer-Encoding: binary\r\nContent-ID: <root.message@hienode.test>\r\n\r\n", env, b"\r\n"]
        for cid, (ct, data) in attachments.items():
            out += [b"--" + bnd.encode() + b"\r\n",
                    ("Content-Type: %s\r\nContent-Transfer-Encoding: binary\r\nContent-ID: <%s>\r\n\r\n"
                     % (ct, cid)).encode(), data, b"\r\n"]
        out.append(b"--" + bnd.encode() + b"--\r\n")
        payload = b"".join(out)
        ctype = ('multipart/related; boundary="%s"; type="application/xop+xml"; '
                 'start="<root.message@hienode.test>"; start-info="application/soap+xml"; action="%s"'
                 % (bnd, action))
    else:
        payload = env
        ctype = 'application/soap+xml; charset=UTF-8; action="%s"' % action
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout)
    LAST_POST[0] = time.time()
    try:
        conn.request("POST", u.path or "/", body=payload, headers={"Content-Type": ctype})
        r = conn.getresponse()
        resp = Response(r.status, r.getheader("Content-Type") or "", r.read())
    except OSError as e:
        resp = Response(0, "", b"")
        resp.error = "transport: %s" % e
        return resp
    finally:
        conn.close()
    try:
        xml_bytes = resp.raw
        if resp.ctype.lower().startswith("multipart/"):
            parts, start = parse_multipart(resp.ctype, resp.raw)
            root_part = None
            for h, b in parts:
                cid = h.get("content-id", "").strip("<>")
                if start and cid == start.strip("<>"):
                    root_part = b
                else:
                    resp.parts[cid] = b
            if root_part is None and parts:
                root_part = parts[0][1]
                resp.parts.pop(parts[0][0].get("content-id", "").strip("<>"), None)
            xml_bytes = root_part or b""
        if not xml_bytes.strip():
            resp.error = "HTTP %d with an empty body" % resp.http_status
            return resp
        env_el = ET.fromstring(xml_bytes)
        resp.envelope = env_el
        body = first(env_el, "Body")
        if body is None:
            resp.error = "HTTP %d: response is not a SOAP envelope (root %s)" % (resp.http_status, local(env_el.tag))
            return resp
        kids = children(body)
        resp.body = kids[0] if kids else None
        if resp.body is not None and local(resp.body.tag) == "Fault":
            codes = [" ".join(text_of(v).split()) for v in resp.body.iter() if local(v.tag) in ("Value", "faultcode")]
            texts = [" ".join(text_of(t).split()) for t in resp.body.iter() if local(t.tag) in ("Text", "faultstring")]
            resp.fault = ("%s: %s" % ("/".join(codes) or "?", " ".join(texts) or "(no reason)"))[:300]
    except (ValueError, ET.ParseError) as e:
        resp.error = "HTTP %d: unparsable response (%s): %r" % (resp.http_status, e, resp.raw[:200])
    return resp


# ---------------------------------------------------------------------------------------------------------------
# Test kit model

class Section:
    def __init__(self, test, name, path, plan):
        self.test, self.name, self.path, self.plan = test, name, path, plan

    @property
    def key(self):
        return "%s/%s" % (self.test, self.name) if self.name else self.test


def load_sections(testkit, test):
    tdir = os.path.join(testkit, "tests", test)
    if not os.path.isdir(tdir):
        raise StepError("test %s not found in the testkit" % test)
    names = []
    idx = os.path.join(tdir, "index.idx")
    if os.path.exists(idx):
        names = [l.strip() for l in open(idx) if l.strip() and not l.startswith("#")]
    if not names:
        if os.path.exists(os.path.join(tdir, "testplan.xml")):
            return [Section(test, "", tdir, os.path.join(tdir, "testplan.xml"))]
        names = sorted(d for d in os.listdir(tdir) if os.path.exists(os.path.join(tdir, d, "testplan.xml")))
    out = []
    for n in names:
        p = os.path.join(tdir, n, "testplan.xml")
        if os.path.exists(p):
            out.append(Section(test, n, os.path.join(tdir, n), p))
    return out


class StepLog:
    def __init__(self, step_id, trans_name):
        self.id = step_id
        self.trans = trans_name
        self.assigned = {}       # section name (AssignedUids, ...) -> {symbol: value}
        self.reports = {}
        self.input = None        # InputMetadata element
        self.result = None       # response body element
        self.status = None       # PASS / FAIL / SKIP
        self.reason = ""
        self.pid = None

    def to_xml(self):
        ts = ET.Element("TestStep", {"id": self.id})
        tr = ET.SubElement(ts, self.trans or "NullTransaction", {"step": self.id})
        if self.input is not None:
            ET.SubElement(tr, "InputMetadata").append(copy.deepcopy(self.input))
        for sec, m in self.assigned.items():
            s = ET.SubElement(tr, sec)
            for k, v in m.items():
                ET.SubElement(s, "Assign", {"symbol": k, "id": v})
        if self.result is not None:
            ET.SubElement(tr, "Result").append(copy.deepcopy(self.result))
        reps = ET.SubElement(tr, "Reports")
        for k, v in self.reports.items():
            ET.SubElement(reps, "Report", {"name": k}).text = v
        ET.SubElement(ts, "StepStatus").text = "Success" if self.status == "PASS" else "Failure"
        return ts


class TestContext:
    """Per top-level test: its patient ids (fresh per run)."""

    def __init__(self, runner, test):
        self.runner, self.test = runner, test
        self._pid = None
        self._pid2 = None
        self.current_pid = None  # NewPatientId / PIF CreateNewPatientId replace it for later steps

    @property
    def pid(self):
        if self.current_pid:
            return self.current_pid
        if self._pid is None:
            self._pid = self.runner.new_pid(register=True)
        return self._pid

    @property
    def pid2(self):
        if self._pid2 is None:
            self._pid2 = self.runner.new_pid(register=True)
        return self._pid2


# ---------------------------------------------------------------------------------------------------------------
# The runner

class Runner:
    def __init__(self, args):
        self.a = args
        self.testkit = args.testkit
        self.logs = {}            # section key -> {step id: StepLog}
        self.sections_done = set()
        self.tests_done = {}      # test -> "PASS"/"FAIL"/"SKIP"
        self.in_progress = set()
        self.counts = {"PASS": 0, "FAIL": 0, "SKIP": 0}
        self.test_results = {}    # test -> (status, passed, total, first failure)
        stamp = time.strftime("%m%d%H%M%S")
        self.run_tag = "%s%d" % (stamp, os.getpid() % 1000)
        self.uid_base = "1.2.42.%d.%d" % (int(time.time()), os.getpid())
        self.uid_n = 0
        self.pid_n = 0
        self.registered = set()
        self.sent_docs = {}       # document uniqueId -> (file, bytes) sent with ITI-41 in this run
        self.out = sys.stdout

    # ids --------------------------------------------------------------------------------------------------
    def new_uid(self):
        self.uid_n += 1
        return "%s.%d" % (self.uid_base, self.uid_n)

    def new_pid(self, register):
        self.pid_n += 1
        pid = "N%s.%d^^^&%s&ISO" % (self.run_tag, self.pid_n, self.a.pid_oid)
        if register:
            self.register_pid(pid)
        return pid

    def register_pid(self, pid):
        if pid in self.registered or not self.a.hienode:
            return
        argv = [self.a.hienode]
        if self.a.hienode_config:
            argv += ["-c", self.a.hienode_config]
        argv += ["patient", "add", "--id", pid]
        if self.a.dry_run:
            self.registered.add(pid)
            return
        r = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise StepError("`hienode patient add --id %s` failed (exit %d): %s" % (
                pid, r.returncode, (r.stderr or r.stdout).strip()[:300]))
        self.registered.add(pid)

    # output -----------------------------------------------------------------------------------------------
    def emit(self, name, status, reason=""):
        self.counts[status] += 1
        line = "%s %s" % (name, status)
        if reason:
            line += " " + " ".join(reason.split())[:self.a.reason_width]
        print(line, file=self.out, flush=True)

    # tests ------------------------------------------------------------------------------------------------
    def run_test(self, test, dependency_of=None):
        if test in self.tests_done:
            return self.tests_done[test]
        if test in self.in_progress:
            return "SKIP"
        self.in_progress.add(test)
        try:
            sections = load_sections(self.testkit, test)
        except StepError as e:
            self.emit(test, "SKIP", str(e))
            self.tests_done[test] = "SKIP"
            self.test_results[test] = ("SKIP", 0, 0, str(e))
            return "SKIP"
        for dep in self.dependencies(test, sections):
            self.run_test(dep, dependency_of=test)
        ctx = TestContext(self, test)
        passed = total = 0
        first_fail = ""
        statuses = []
        for sec in sections:
            for st, reason in self.run_section(sec, ctx):
                total += 1
                statuses.append(st)
                if st == "PASS":
                    passed += 1
                elif st == "FAIL" and not first_fail:
                    first_fail = reason
        if "FAIL" in statuses:
            status = "FAIL"
        elif "SKIP" in statuses or not statuses:
            status = "SKIP"
        else:
            status = "PASS"
        self.in_progress.discard(test)
        self.tests_done[test] = status
        self.test_results[test] = (status, passed, total, first_fail)
        note = " (dependency of %s)" % dependency_of if dependency_of else ""
        print("TEST %s %s %d/%d steps passed%s" % (test, status, passed, total, note), file=self.out, flush=True)
        return status

    def dependencies(self, test, sections):
        deps = []
        for sec in sections:
            try:
                plan = ET.parse(sec.plan).getroot()
            except ET.ParseError:
                continue
            for e in plan.iter():
                other = None
                if e.tag == "UseId" and e.get("testdir"):
                    key = self.resolve_testdir(sec, e.get("testdir"))
                    if key:
                        other = key.split("/")[0]
                elif e.tag == "UseReport" and e.get("test"):
                    other = e.get("test")
                    if other in PIF_TESTS:
                        other = None
                elif e.tag in ("UseXPath", "UseObjectRef", "ReferenceMetadata", "UseRepositoryUniqueId") \
                        and e.get("testdir"):
                    key = self.resolve_testdir(sec, e.get("testdir"))
                    if key:
                        other = key.split("/")[0]
                if other and other != test and other not in deps:
                    deps.append(other)
        return deps

    def resolve_testdir(self, sec, testdir):
        """testdir is relative to the section's directory (the toolkit's log directory). Falls back to the test
        directory ("submit" written from 12021/retrieve means 12021/submit). Returns a section key or None."""
        tests_root = os.path.join(self.testkit, "tests")
        for base in (sec.path, os.path.dirname(sec.path) if sec.name else sec.path):
            p = os.path.normpath(os.path.join(base, testdir))
            rel = os.path.relpath(p, tests_root)
            if not rel.startswith("..") and os.path.isdir(p):
                return rel.replace(os.sep, "/")
        return None

    def run_section(self, sec, ctx):
        out = []
        if sec.key in self.sections_done:
            return out
        self.sections_done.add(sec.key)
        self.logs.setdefault(sec.key, {})
        try:
            plan = ET.parse(sec.plan).getroot()
        except ET.ParseError as e:
            self.emit(sec.key, "SKIP", "testplan.xml does not parse: %s" % e)
            return [("SKIP", str(e))]
        ctx.current_pid = None
        for step in children(plan, "TestStep"):
            sid = step.get("id", "?")
            name = "%s/%s" % (sec.key, sid)
            log = StepLog(sid, None)
            self.logs[sec.key][sid] = log
            try:
                status, reason = self.run_step(sec, ctx, step, log)
            except StepError as e:
                status, reason = ("SKIP" if e.skip else "FAIL"), str(e)
            except Exception as e:  # a runner bug must not stop the run
                status, reason = "FAIL", "runner error: %s: %s" % (type(e).__name__, e)
                if self.a.verbose:
                    import traceback
                    traceback.print_exc()
            log.status, log.reason = status, reason
            self.emit(name, status, reason)
            out.append((status, reason))
        return out

    # steps ------------------------------------------------------------------------------------------------
    TRANSACTIONS = {"RegisterTransaction": "r", "StoredQueryTransaction": "sq", "ProvideAndRegisterTransaction": "pr",
                    "RetrieveTransaction": "ret", "PatientIdentityFeedTransaction": "pif",
                    "NullTransaction": "null", "MuTransaction": "mu", "RemoveMetadataTransaction": "rm"}

    def run_step(self, sec, ctx, step, log):
        expected_status = []
        exp_msg = exp_code = None
        use_alt = False
        trans = None
        for ins in children(step):
            n = ins.tag
            if n == "ExpectedStatus":
                expected_status = [s.strip() for s in text_of(ins).split(",") if s.strip()]
            elif n == "ExpectedErrorMessage":
                exp_msg = text_of(ins).strip()
            elif n == "ExpectedErrorCode":
                exp_code = text_of(ins).strip()
            elif n == "NewPatientId":
                ctx.current_pid = self.new_pid(register=False)
            elif n == "AltPatientId":
                use_alt = True
            elif n in ("Rule", "Goal", "Standard", "RegistryEndpoint"):
                pass
            elif n in self.TRANSACTIONS:
                trans = ins
            elif n.endswith("Transaction"):
                raise StepError("%s is not supported by this runner" % n, skip=True)
        if trans is None:
            return "PASS", "(no transaction)"
        log.trans = trans.tag
        kind = self.TRANSACTIONS[trans.tag]
        pid = self.new_pid(register=False) if use_alt else ctx.pid
        log.pid = pid
        st = StepRun(self, sec, ctx, step, trans, log, kind, pid, expected_status or ["Success"], exp_msg, exp_code)
        return st.run()

    # log lookups ------------------------------------------------------------------------------------------
    def find_step(self, sec, testdir, step_id, what):
        if testdir:
            key = self.resolve_testdir(sec, testdir)
            if key is None:
                raise StepError("%s: test directory %s (from %s) does not exist" % (what, testdir, sec.key))
        else:
            key = sec.key
        if key not in self.logs:
            test = key.split("/")[0]
            if test not in self.tests_done and test != sec.test:
                self.run_test(test, dependency_of=sec.test)
        steps = self.logs.get(key, {})
        log = steps.get(step_id)
        if log is None:
            raise StepError("%s: no step %s in %s (not run)" % (what, step_id, key))
        return key, log

    def section_log_xml(self, key):
        root = ET.Element("TestResults")
        for log in self.logs.get(key, {}).values():
            root.append(log.to_xml())
        return root


class StepRun:
    """One step's transaction: preparation, call, evaluation."""

    def __init__(self, runner, sec, ctx, step, trans, log, kind, pid, expected, exp_msg, exp_code):
        self.R, self.sec, self.ctx, self.step, self.trans, self.log = runner, sec, ctx, step, trans, log
        self.kind, self.pid, self.expected, self.exp_msg, self.exp_code = kind, pid, expected, exp_msg, exp_code
        self.a = runner.a
        self.errors = []
        self.linkage = {}

    # instruction parsing ----------------------------------------------------------------------------------
    def parse(self):
        t = self.trans
        self.metadata_file = None
        self.assign_uuids = False
        self.assign_uids = True
        self.no_assign_uid_to = None
        self.assign_pid = True
        self.use_ids, self.use_reports, self.reports, self.use_xpaths, self.use_orefs = [], [], [], [], []
        self.asserts, self.expected_contents, self.documents, self.ref_docs = [], None, [], []
        self.ref_metadata = None
        self.no_metadata = False
        self.create_new_pid = False
        self.mtom = True
        for p in children(t):
            n = p.tag
            if n == "MetadataFile":
                self.metadata_file = os.path.join(self.sec.path, text_of(p).strip())
            elif n == "AssignUuids":
                self.assign_uuids = True
            elif n == "NoAssignUids":
                if p.get("id"):
                    self.no_assign_uid_to = p.get("id")
                else:
                    self.assign_uids = False
            elif n == "NoPatientId":
                self.assign_pid = False
            elif n == "UseId":
                self.use_ids.append(p)
            elif n == "UseReport":
                self.use_reports.append(p)
            elif n == "Report":
                self.reports.append(p)
            elif n == "UseXPath":
                self.use_xpaths.append(p)
            elif n == "UseObjectRef":
                self.use_orefs.append(p)
            elif n == "Assertions":
                self.asserts += children(p, "Assert")
            elif n == "ExpectedContents":
                self.expected_contents = p
            elif n == "Document":
                self.documents.append((p.get("id"), text_of(p).strip()))
            elif n == "ReferenceDocument":
                self.ref_docs.append((p.get("uid"), text_of(p).strip()))
            elif n == "ReferenceMetadata":
                self.ref_metadata = p
            elif n == "NoMetadata":
                self.no_metadata = True
            elif n == "CreateNewPatientId":
                self.create_new_pid = True
            elif n == "NoMTOM":
                self.mtom = False
            elif n == "WaitBefore":
                time.sleep(min(int(text_of(p).strip() or "0"), 10000) / 1000.0)
            elif n in ("XDSb", "SOAP12", "SOAP11", "NoConvert", "ParseMetadata", "CleanParams", "Rule", "Assertion"):
                pass
            else:
                raise StepError("instruction <%s> is not supported by this runner" % n, skip=True)

    # preparation ------------------------------------------------------------------------------------------
    def resolve_use_reports(self):
        vals = []
        for u in self.use_reports:
            name, use_as = u.get("reportName"), u.get("useAs")
            test, section, stepid = u.get("test"), u.get("section") or "None", u.get("step")
            if test in PIF_TESTS:
                v = getattr(self.ctx, PIF_TESTS[test])
                vals.append((use_as, v))
                continue
            if test and test != self.sec.test:
                key = "%s/%s" % (test, section) if section not in ("None", "") else test
                if key not in self.R.logs:
                    self.R.run_test(test, dependency_of=self.sec.test)
            elif section == "THIS":
                key = self.sec.key
            else:
                key = "%s/%s" % (self.sec.test, section) if section not in ("None", "") else self.sec.test
            log = self.R.logs.get(key, {}).get(stepid)
            if log is None:
                raise StepError("UseReport %s: step %s of %s has not run" % (name, stepid, key))
            if name not in log.reports:
                raise StepError("UseReport %s: step %s/%s (%s) reported no such value%s" % (
                    name, key, stepid, log.status, (": " + log.reason[:120]) if log.status != "PASS" else ""))
            vals.append((use_as, log.reports[name]))
        return vals

    def resolve_use_id(self, u):
        if u.get("value") and u.get("symbol"):
            return u.get("symbol"), u.get("value")
        key, log = self.R.find_step(self.sec, u.get("testdir"), u.get("step"), "UseId %s" % u.get("symbol"))
        section = u.get("section")
        m = log.assigned.get(section)
        if m is None or u.get("id") not in m:
            raise StepError("UseId %s: %s/%s (%s) has no %s for %s%s" % (
                u.get("symbol"), key, u.get("step"), log.status, section, u.get("id"),
                (": " + log.reason[:120]) if log.status != "PASS" else ""))
        return u.get("symbol"), m[u.get("id")]

    def resolve_use_oref(self, u):
        key, log = self.R.find_step(self.sec, u.get("testdir"), u.get("step"), "UseObjectRef %s" % u.get("symbol"))
        if log.result is None:
            raise StepError("UseObjectRef: %s/%s has no result" % (key, u.get("step")))
        refs = Metadata(log.result).orefs
        i = int(u.get("index", "0"))
        if i >= len(refs):
            raise StepError("UseObjectRef: index %d but %s/%s returned %d ObjectRefs" % (i, key, u.get("step"),
                                                                                          len(refs)))
        return u.get("symbol"), refs[i].get("id")

    def resolve_use_xpath(self, u):
        key = self.R.resolve_testdir(self.sec, u.get("testdir")) if u.get("testdir") else self.sec.key
        if key is None:
            raise StepError("UseXPath: no test directory %s" % u.get("testdir"))
        self.R.find_step(self.sec, u.get("testdir"), u.get("step"), "UseXPath")
        root = self.R.section_log_xml(key)
        stepel = [e for e in root if e.get("id") == u.get("step")][0]
        v = xpath_string(text_of(u), stepel, root)
        if u.get("decodebase64", "").lower() == "true":
            v = base64.b64decode(v).decode("utf-8", "replace")
        return u.get("symbol"), v

    def apply(self, root, symbol, value):
        self.linkage[symbol] = value
        if root is not None:
            replace_everywhere(root, symbol, value)

    def prepare(self):
        if self.metadata_file is None:
            return None
        if not os.path.exists(self.metadata_file):
            raise StepError("MetadataFile %s not found" % os.path.relpath(self.metadata_file, self.R.testkit),
                            skip=True)
        root = ET.parse(self.metadata_file).getroot()
        # UseReport first (the toolkit's reportManagerPreRun), then the run's extra linkage.
        for sym, val in self.resolve_use_reports():
            self.apply(root, sym, val)
        text = serialize(root)
        if "$repuid$" in text:
            self.apply(root, "$repuid$", self.a.repository_uid)
        if "$patientid$" in text:
            self.apply(root, "$patientid$", self.pid)
        if "$altpatientid$" in text:
            self.apply(root, "$altpatientid$", self.ctx.pid2)
        generated = set()
        if self.kind in ("r", "pr"):
            # The file may hold the SubmitObjectsRequest inside a ProvideAndRegisterDocumentSetRequest (the
            # toolkit's MetadataParser finds it wherever it is).
            sors = [e for e in root.iter() if local(e.tag) == "SubmitObjectsRequest"]
            if not sors:
                raise StepError("MetadataFile %s holds no SubmitObjectsRequest" % self.metadata_file, skip=True)
            root, generated = to_v3(sors[0])
        # The toolkit's order (BasicTransaction.prepareMetadata): patient id, UseId links, uniqueIds, UUIDs;
        # then UseObjectRef / UseXPath links and $now$ / $lastyear$.
        md = Metadata(root) if self.kind in ("r", "pr") else None
        if md is not None:
            self.assign_patient_ids(md)
        for u in self.use_ids:
            sym, val = self.resolve_use_id(u)
            self.apply(root, sym, val)
        if md is not None:
            self.assign_ids(root, md, generated)
        for u in self.use_orefs:
            sym, val = self.resolve_use_oref(u)
            self.apply(root, sym, val)
        for u in self.use_xpaths:
            sym, val = self.resolve_use_xpath(u)
            self.apply(root, sym, val)
        # Time ranges are exclusive at their upper end, to the second: a query built in the same second as the
        # registration it looks for would miss it. At a Connectathon the data is loaded long before; here, wait
        # for the next second.
        if int(time.time()) == int(LAST_POST[0]) and b"$now$" in ET.tostring(root):
            time.sleep(1.0 - (time.time() % 1.0) + 0.01)
        now = time.strftime("%Y%m%d%H%M%S", time.gmtime())
        self.apply(root, "$now$", now)
        self.apply(root, "$lastyear$", str(int(now[:4]) - 1) + now[4:])
        if self.kind == "sq" and local(root.tag) != "AdhocQueryRequest":
            raise StepError("StoredQueryTransaction: %s is not an AdhocQueryRequest" % self.metadata_file)
        left = sorted(set(re.findall(r"\$[A-Za-z_][\w]*\$", serialize(root))))
        if left and self.kind in ("sq", "r", "pr", "ret"):
            self.unresolved = left
        return root

    def assign_patient_ids(self, md):
        """Patient id as TestMgmt does (on the v3 metadata); the map is keyed by the objects' submitted ids."""
        if self.assign_pid:
            m = {}
            for objs, scheme in ((md.eos, UUID_DE_PATIENTID), (md.rps, UUID_SS_PATIENTID),
                                 (md.rps, UUID_FOL_PATIENTID)):
                for o in objs:
                    for x in ext_ids(o, scheme):
                        x.set("value", self.pid)
                        m[o.get("id")] = self.pid
            self.log.assigned["AssignedPatientId"] = m

    def assign_ids(self, root, md, generated):
        """uniqueIds (TestMgmt.assignUniqueIds) and UUIDs for symbolic ids (IdParser)."""
        if self.assign_uids:
            m = {}
            for objs, scheme in ((md.eos, UUID_DE_UNIQUEID), (md.rps, UUID_SS_UNIQUEID),
                                 (md.rps, UUID_FOL_UNIQUEID)):
                for o in objs:
                    if self.no_assign_uid_to and o.get("id") == self.no_assign_uid_to:
                        continue
                    for x in ext_ids(o, scheme):
                        v = self.R.new_uid()
                        x.set("value", v)
                        m[o.get("id")] = v
            self.log.assigned["AssignedUids"] = m
            for k, v in m.items():
                self.log.reports[k + "_uid"] = v
        if self.assign_uuids:
            m = {}
            for e in root.iter():
                i = e.get("id") if isinstance(e.tag, str) else None
                if i and not i.startswith("urn:uuid:") and i not in generated and local(e.tag) != "AdhocQuery":
                    if i not in m:
                        m[i] = "urn:uuid:%s" % uuid.uuid4()
                    e.set("id", m[i])
            for e in root.iter():
                for att in ("classifiedObject", "sourceObject", "targetObject", "registryObject"):
                    v = e.get(att)
                    if v in m:
                        e.set(att, m[v])
            self.log.assigned["AssignedUuids"] = m
            for k, v in m.items():
                self.log.reports[k + "_uuid"] = v
        # Keep the uniqueIds of the metadata visible to UseId even when not reassigned.
        if not self.assign_uids:
            m = {}
            for objs, scheme in ((md.eos, UUID_DE_UNIQUEID), (md.rps, UUID_SS_UNIQUEID), (md.rps, UUID_FOL_UNIQUEID)):
                for o in objs:
                    for x in ext_ids(o, scheme):
                        m[o.get("id")] = x.get("value")
            self.log.assigned["AssignedUids"] = m

    # run --------------------------------------------------------------------------------------------------
    def run(self):
        self.parse()
        self.unresolved = []
        if self.kind == "pif":
            return self.run_pif()
        if self.kind == "null":
            return self.evaluate_asserts_only()
        if self.kind in ("mu", "rm"):
            raise StepError("%s is not supported by this runner" % self.trans.tag, skip=True)
        if self.metadata_file is None:
            raise StepError("%s without MetadataFile" % self.trans.tag, skip=True)
        req = self.prepare()
        if self.unresolved:
            raise StepError("unresolved symbols in the request: %s" % " ".join(self.unresolved))
        if self.kind in ("r", "pr"):
            self.log.input = req
        else:
            self.log.input = req
        if self.a.dry_run:
            self.dump(self.pnr_body(req)[0] if self.kind == "pr" else req)
            self.reports = [r for r in self.reports if r.get("section") == "InputMetadata"]
            problems = self.make_reports()
            return "SKIP", "dry run (request prepared)%s" % ("; " + "; ".join(problems) if problems else "")
        attachments = None
        if self.kind == "r":
            body, url = req, self.a.url + "/xds/registry"
        elif self.kind == "sq":
            body, url = req, self.a.url + "/xds/registry"
        elif self.kind == "pr":
            body, attachments = self.pnr_body(req)
            url = self.a.url + "/xds/repository"
        elif self.kind == "ret":
            body, url = req, self.a.url + "/xds/repository"
            attachments = None
        else:
            raise StepError("transaction %s not supported" % self.trans.tag, skip=True)
        self.dump(body)
        resp = soap_call(url, ACTION[self.kind], body, attachments, timeout=self.a.timeout)
        if self.a.dump:
            with open(os.path.join(self.a.dump, self.sec.key, "%s.response" % self.log.id), "wb") as f:
                f.write(resp.raw)
        return self.evaluate(resp)

    def dump(self, el):
        if not self.a.dump:
            return
        d = os.path.join(self.a.dump, self.sec.key)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "%s.request.xml" % self.log.id), "w") as f:
            f.write(serialize(el))

    def pnr_body(self, sor):
        pnr = ET.Element("{%s}ProvideAndRegisterDocumentSetRequest" % NS_XDSB)
        pnr.append(sor)
        atts = {}
        uuids = self.log.assigned.get("AssignedUuids", {})
        uid_of = {}
        for eo in Metadata(sor).eos:
            x = ext_ids(eo, UUID_DE_UNIQUEID)
            if x:
                uid_of[eo.get("id")] = x[0].get("value")
        for i, (docid, fname) in enumerate(self.documents):
            path = os.path.join(self.sec.path, fname)
            if not os.path.exists(path):
                raise StepError("Document file %s not found" % fname, skip=True)
            data = open(path, "rb").read()
            did = uuids.get(docid, docid)
            if did in uid_of and not self.a.dry_run:
                self.R.sent_docs[uid_of[did]] = (os.path.relpath(path, self.R.testkit), data)
            d = ET.SubElement(pnr, "{%s}Document" % NS_XDSB, {"id": did})
            if self.mtom:
                cid = "doc%d.%s@hienode.test" % (i, uuid.uuid4().hex[:8])
                ET.SubElement(d, "{%s}Include" % NS_XOP, {"href": "cid:" + cid})
                ct = "text/xml" if fname.endswith(".xml") else "text/plain" if fname.endswith(".txt") else \
                    "application/octet-stream"
                atts[cid] = (ct, data)
            else:
                d.text = base64.b64encode(data).decode()
        return pnr, (atts if self.mtom else None)

    def run_pif(self):
        if self.create_new_pid:
            pid = self.R.new_pid(register=True)
            self.ctx.current_pid = pid
        else:
            pid = self.ctx.pid
            self.R.register_pid(pid)
        self.log.reports["$patientid$"] = pid
        self.log.assigned["PatientId"] = {"PatientId": pid}
        return "PASS", "patient %s registered with `hienode patient add`" % pid.split("^")[0]

    # evaluation -------------------------------------------------------------------------------------------
    def evaluate(self, resp):
        if resp.error:
            return "FAIL", resp.error
        self.log.result = resp.body
        if resp.fault is not None:
            if self.expected and self.expected[0] == "Fault":
                return "PASS", "SOAP Fault as expected"
            return "FAIL", "HTTP %d SOAP Fault: %s (expected %s)" % (resp.http_status, resp.fault,
                                                                       "|".join(self.expected))
        body = resp.body
        if body is None:
            return "FAIL", "HTTP %d: empty SOAP Body" % resp.http_status
        want = {"r": "RegistryResponse", "pr": "RegistryResponse", "sq": "AdhocQueryResponse",
                "ret": "RetrieveDocumentSetResponse"}[self.kind]
        if local(body.tag) != want:
            return "FAIL", "response body is %s, expected %s" % (local(body.tag), want)
        rr = body
        if self.kind == "ret":
            rr = first(body, "RegistryResponse")
            if rr is None:
                return "FAIL", "RetrieveDocumentSetResponse without rs:RegistryResponse"
        status_full = rr.get("status", "")
        status = status_full.rsplit(":", 1)[-1]
        errs = [(e.get("errorCode", ""), e.get("codeContext", ""), e.get("severity", "").rsplit(":", 1)[-1])
                for e in rr.iter() if local(e.tag) == "RegistryError"]
        errtxt = "; ".join("%s%s: %s" % (c, "" if s in ("Error", "") else "(%s)" % s, ctxt[:200])
                           for c, ctxt, s in errs[:4])
        problems = []
        if status not in self.expected:
            problems.append("status %s, expected %s%s" % (status or "(none)", "|".join(self.expected),
                                                           (" [errors: %s]" % errtxt) if errtxt else ""))
        elif RESPONSE_STATUS_NS.get(status) and not status_full.startswith(RESPONSE_STATUS_NS[status] + ":"):
            problems.append("status %s has the wrong namespace (expected %s:%s)" % (
                status_full, RESPONSE_STATUS_NS[status], status))
        if self.exp_msg:
            if not any(self.exp_msg in c or self.exp_msg in ctxt for c, ctxt, _ in errs):
                problems.append("expected error %s not returned%s" % (
                    self.exp_msg, (" [errors: %s]" % errtxt) if errtxt else " (no RegistryError)"))
        if self.exp_code:
            if not any(self.exp_code == c for c, _, _ in errs):
                problems.append("expected errorCode %s not returned%s" % (
                    self.exp_code, (" [errors: %s]" % errtxt) if errtxt else " (no RegistryError)"))
        # Reports are generated after a successful step (the toolkit's reportManagerPostRun).
        if not problems and self.kind in ("sq", "r", "pr") and self.expected_contents is not None:
            problems += self.expected_contents_check(body)
        if not problems and self.kind == "ret":
            problems += self.retrieve_check(body, resp, status)
        if not problems:
            problems += self.make_reports()
        if not problems and self.asserts:
            problems += self.run_asserts()
        if problems:
            return "FAIL", "; ".join(problems)
        detail = "status %s" % status
        if errs:
            detail += " with %s" % ",".join(sorted({c for c, _, _ in errs}))
        return "PASS", detail

    def make_reports(self):
        problems = []
        for r in self.reports:
            sect = r.get("section") or "Result"
            src = self.log.input if sect == "InputMetadata" else self.log.result if sect == "Result" else None
            if src is None:
                problems.append("Report %s: section %s unavailable" % (r.get("name"), sect))
                continue
            try:
                v = xpath_string(text_of(r), src)
            except ValueError as e:
                problems.append("Report %s: %s" % (r.get("name"), e))
                continue
            self.log.reports[r.get("name")] = v.strip()
        return problems

    def expected_contents_check(self, body):
        md = Metadata(body)
        errs = []

        def cnt(what, have, want):
            if len(have) != want:
                errs.append("ExpectedContents: %d %s instead of %d" % (len(have), what, want))

        def status_of(o):
            return (o.get("status") or "").rsplit(":", 1)[-1]

        def has_assoc(src, tgt, typ):
            for a in md.assocs:
                if a.get("sourceObject") == src.get("id") and a.get("targetObject") == tgt.get("id") and \
                        a.get("associationType", "").rsplit(":", 1)[-1] == typ:
                    return a
            errs.append("ExpectedContents: no %s association %s -> %s" % (typ, src.get("id"), tgt.get("id")))
            return None

        def ss_approved():
            if not md.sss:
                errs.append("ExpectedContents: no SubmissionSet")
            elif status_of(md.sss[0]) != "Approved":
                errs.append("ExpectedContents: SubmissionSet status %s, not Approved" % status_of(md.sss[0]))

        for ec in children(self.expected_contents):
            n = ec.tag
            c = int(ec.get("count")) if ec.get("count") is not None else -1
            before = len(errs)
            if n == "ObjectRefs":
                cnt("ObjectRefs", md.orefs, c)
                cnt("SubmissionSets", md.sss, 0)
                cnt("Documents", md.eos, 0)
                cnt("Folders", md.fols, 0)
                cnt("Associations", md.assocs, 0)
            elif n == "Documents":
                cnt("Documents", md.eos, c)
            elif n == "Folders":
                cnt("Folders", md.fols, c)
            elif n == "SubmissionSets":
                cnt("SubmissionSets", md.sss, c)
            elif n == "Associations":
                cnt("Associations", md.assocs, c)
            elif n == "None":
                cnt("SubmissionSets", md.sss, 0)
                cnt("Documents", md.eos, 0)
                cnt("Folders", md.fols, 0)
                if len(errs) == before:
                    cnt("Associations", md.assocs, 0)
            elif n in ("SSwithOneDoc", "SSwithTwoDoc", "SSwithOneDocOnly", "SSwithTwoDocOnly"):
                nd = 1 if "One" in n else 2
                if not md.sss:
                    errs.append("ExpectedContents %s: no SubmissionSet" % n)
                cnt("Documents", md.eos, nd)
                cnt("Associations", md.assocs, nd)
                if len(errs) == before:
                    for eo in md.eos:
                        has_assoc(md.sss[0], eo, "HasMember")
                    if not n.endswith("Only"):
                        ss_approved()
            elif n == "SSApproved":
                ss_approved()
            elif n in ("DocApp", "DocDep"):
                want = "Approved" if n == "DocApp" else "Deprecated"
                for eo in md.eos:
                    if status_of(eo) != want:
                        errs.append("ExpectedContents %s: DocumentEntry %s status %s" % (n, eo.get("id"),
                                                                                        status_of(eo) or "(none)"))
                        break
                if n == "DocApp" and not md.eos:
                    errs.append("ExpectedContents DocApp: no DocumentEntry")
            elif n in ("OneDocApp", "OneDocDep"):
                want = "Approved" if n == "OneDocApp" else "Deprecated"
                k = sum(1 for eo in md.eos if status_of(eo) == want)
                if k != 1:
                    errs.append("ExpectedContents %s: %d %s DocumentEntries" % (n, k, want))
            elif n in ("FolApp", "FolDep"):
                want = "Approved" if n == "FolApp" else "Deprecated"
                for f in md.fols:
                    if status_of(f) != want:
                        errs.append("ExpectedContents %s: Folder %s status %s" % (n, f.get("id"), status_of(f)))
                        break
            elif n in ("HasRPLC", "HasXFRM_RPLC", "HasAPND"):
                typ = n[3:]
                if not any(a.get("associationType", "").rsplit(":", 1)[-1] == typ for a in md.assocs):
                    errs.append("ExpectedContents: %s association not found" % typ)
            elif n == "SSwithOneFol":
                if not md.sss:
                    errs.append("ExpectedContents %s: no SubmissionSet" % n)
                cnt("Documents", md.eos, 0)
                cnt("Folders", md.fols, 1)
                if len(errs) == before:
                    cnt("Associations", md.assocs, 1)
                    has_assoc(md.sss[0], md.fols[0], "HasMember")
            elif n in ("SSwithOneDocOneFol", "SSwithTwoDocOneFol"):
                nd = 1 if n == "SSwithOneDocOneFol" else 2
                if not md.sss:
                    errs.append("ExpectedContents %s: no SubmissionSet" % n)
                cnt("Documents", md.eos, nd)
                cnt("Folders", md.fols, 1)
                if len(errs) == before:
                    cnt("Associations", md.assocs, 1 + 3 * nd)
                    ss, fol = md.sss[0], md.fols[0]
                    has_assoc(ss, fol, "HasMember")
                    fd = []
                    for eo in md.eos:
                        has_assoc(ss, eo, "HasMember")
                        a = has_assoc(fol, eo, "HasMember")
                        if a is not None:
                            fd.append(a.get("id"))
                    for aid in fd:
                        if not any(a.get("sourceObject") == ss.get("id") and a.get("targetObject") == aid
                                   for a in md.assocs):
                            errs.append("ExpectedContents %s: no SubmissionSet HasMember for the folder "
                                        "association %s" % (n, aid))
            elif n == "DocumentEntries":
                errs += self.document_entries_check(ec, md)
            else:
                errs.append("ExpectedContents <%s> is not supported by this runner" % n)
        return errs

    def document_entries_check(self, ec, md):
        """Validator.verifyDocumentEntries: MustOnlyInclude / Include / Exclude lists of DocumentEntry (UseId,
        DocumentEntryType), and DocumentEntryType for every ExtrinsicObject."""
        errs = []
        got = {eo.get("id"): eo for eo in md.eos}
        for sel in children(ec):
            if sel.tag == "DocumentEntryType":
                for eo in md.eos:
                    if eo.get("objectType") != text_of(sel).strip():
                        errs.append("ExpectedContents DocumentEntries: ExtrinsicObject %s objectType %s, expected %s"
                                    % (eo.get("id"), eo.get("objectType"), text_of(sel).strip()))
                continue
            if sel.tag not in ("MustOnlyInclude", "Include", "Exclude"):
                errs.append("ExpectedContents DocumentEntries <%s> is not supported by this runner" % sel.tag)
                continue
            listed = []
            for de in children(sel, "DocumentEntry"):
                ids = [self.resolve_use_id(u)[1] for u in children(de, "UseId")]
                typ = first(de, "DocumentEntryType")
                for i in ids:
                    listed.append(i)
                    if sel.tag == "Exclude":
                        if i in got:
                            errs.append("ExpectedContents DocumentEntries: %s returned but excluded" % i)
                    elif i not in got:
                        errs.append("ExpectedContents DocumentEntries: %s not returned (got %s)" % (
                            i, ", ".join(got) or "none"))
                    elif typ is not None and got[i].get("objectType") != text_of(typ).strip():
                        errs.append("ExpectedContents DocumentEntries: %s objectType %s, expected %s" % (
                            i, got[i].get("objectType"), text_of(typ).strip()))
            if sel.tag == "MustOnlyInclude":
                extra = [i for i in got if i not in listed]
                if extra:
                    errs.append("ExpectedContents DocumentEntries: unexpected %s" % ", ".join(extra))
        return errs

    def retrieve_check(self, body, resp, status):
        errs = []
        docs = {}
        for dr in children(body, "DocumentResponse"):
            uid = text_of(first(dr, "DocumentUniqueId")).strip()
            d = first(dr, "Document")
            data = None
            if d is not None:
                inc = first(d, "Include")
                if inc is not None:
                    cid = urllib.parse.unquote(inc.get("href", "")[4:])
                    data = resp.parts.get(cid)
                    if data is None:
                        errs.append("Retrieve: Document %s refers to MIME part %s which is not in the response"
                                    % (uid, cid))
                else:
                    try:
                        data = base64.b64decode(text_of(d))
                    except ValueError:
                        errs.append("Retrieve: Document %s is not base64" % uid)
            else:
                errs.append("Retrieve: DocumentResponse %s without Document" % uid)
            for f in ("RepositoryUniqueId", "mimeType"):
                if first(dr, f) is None:
                    errs.append("Retrieve: DocumentResponse %s without %s" % (uid, f))
            docs[uid] = (data, text_of(first(dr, "mimeType")).strip())
        # Every returned document must be byte-identical to what this run sent with ITI-41 for that uniqueId.
        # (The toolkit's ReferenceDocument paths are relative to the section directory, where the testkit's
        # files mostly are not; 12029 even names a file other than the one it submits. A ReferenceDocument that
        # exists there is compared too.)
        compared = set()
        for uid, (got, _) in docs.items():
            if uid in self.R.sent_docs and got is not None:
                fname, want = self.R.sent_docs[uid]
                compared.add(uid)
                if got != want:
                    errs.append("Retrieve: document %s differs from the %s sent with ITI-41 (%d bytes, sha1 %s; "
                                "expected %d bytes, sha1 %s)" % (uid, fname, len(got), hashlib.sha1(got).hexdigest()[:12],
                                                                 len(want), hashlib.sha1(want).hexdigest()[:12]))
        if self.ref_docs and status == "Success":
            for uid, fname in self.ref_docs:
                uid = self.linkage.get(uid, uid)
                if uid not in docs:
                    errs.append("Retrieve: document %s not returned (got %s)" % (uid, ", ".join(docs) or "none"))
                    continue
                path = os.path.join(self.sec.path, fname)
                if uid in compared or not os.path.exists(path):
                    continue
                want = open(path, "rb").read()
                got = docs[uid][0]
                if got != want:
                    errs.append("Retrieve: document %s content differs from %s (%d bytes, sha1 %s; expected %d "
                                "bytes, sha1 %s)" % (uid, fname, len(got or b""),
                                                     hashlib.sha1(got or b"").hexdigest()[:12], len(want),
                                                     hashlib.sha1(want).hexdigest()[:12]))
        if status == "Success" and self.log.input is not None:
            asked = [text_of(first(r, "DocumentUniqueId")).strip() for r in children(self.log.input,
                                                                                      "DocumentRequest")]
            for a in asked:
                if a not in docs:
                    errs.append("Retrieve: status Success but document %s missing" % a)
        if self.ref_metadata is not None:
            try:
                _, ref = self.R.find_step(self.sec, self.ref_metadata.get("testdir"), self.ref_metadata.get("step"),
                                          "ReferenceMetadata")
                for eo in Metadata(ref.result).eos if ref.result is not None else []:
                    uids = [x.get("value") for x in ext_ids(eo, UUID_DE_UNIQUEID)]
                    if uids and uids[0] in docs and eo.get("mimeType") != docs[uids[0]][1]:
                        errs.append("Retrieve: mimeType %s for %s, registry metadata says %s" % (
                            docs[uids[0]][1], uids[0], eo.get("mimeType")))
            except StepError as e:
                errs.append(str(e))
        return errs

    def run_asserts(self):
        root = self.R.section_log_xml(self.sec.key)
        problems = []
        for a in self.asserts:
            expr = " ".join(text_of(a).split()).replace("$DATE$", time.strftime("%Y%m%d", time.gmtime()))
            for k, v in self.linkage.items():
                expr = expr.replace(k, v)
            try:
                ok = to_bool(xpath_eval(expr, root, root))
            except ValueError as e:
                problems.append("Assert %s: runner cannot evaluate (%s)" % (a.get("id"), e))
                continue
            if not ok:
                problems.append("Assert %s failed: %s" % (a.get("id"), expr[:200]))
        return problems

    def evaluate_asserts_only(self):
        # UseReport values are substituted into the Assert text (the toolkit applies the linkage there too).
        for sym, val in self.resolve_use_reports():
            self.linkage[sym] = val
        for u in self.use_ids:
            sym, val = self.resolve_use_id(u)
            self.linkage[sym] = val
        if self.a.dry_run:
            return "SKIP", "dry run"
        problems = self.run_asserts()
        if problems:
            return "FAIL", "; ".join(problems)
        return "PASS", "%d assertion(s) hold" % len(self.asserts)


# ---------------------------------------------------------------------------------------------------------------

def collection_tests(testkit, names):
    tests_dir = os.path.join(testkit, "tests")
    out = []
    for t in sorted(os.listdir(tests_dir)):
        p = os.path.join(tests_dir, t, "collections.txt")
        if os.path.exists(p):
            cols = {l.strip() for l in open(p)}
            if cols & set(names):
                out.append(t)
    return out


def read_expected(path):
    out = []
    for line in open(path):
        line = line.split("#", 1)[0].strip()
        if line:
            out.append(line)
    return out


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    default_tk = os.environ.get("NIST_TESTKIT") or "/work/shared/corpus/nist-toolkit/toolkitx/testkit"
    ap = argparse.ArgumentParser(description="Replays NIST XDS testkit tests against a running hienode.",
                                 epilog="Example: nist_runner.py --url http://127.0.0.1:8080 --hienode build/hienode "
                                        "--collections reg,rep --expected tests/conformance/expected_pass.txt")
    ap.add_argument("--url", default="http://127.0.0.1:8080", help="node base URL (endpoints /xds/registry, "
                                                                    "/xds/repository)")
    ap.add_argument("--testkit", default=default_tk, help="the testkit directory (holds tests/)")
    ap.add_argument("--hienode", help="hienode binary used to register patient ids (`patient add`); "
                                      "the node's environment (HIENODE_*) is inherited")
    ap.add_argument("--hienode-config", help="-c config file passed to the hienode CLI")
    ap.add_argument("--collections", default="", help="comma-separated collections (reg,rep)")
    ap.add_argument("--expected", help="file of test ids that must pass (default: %s)" %
                    os.path.join(here, "expected_pass.txt"))
    ap.add_argument("--repository-uid", default="1.3.6.1.4.1.21367.13.20.1000.1",
                    help="the node's [repository] unique_id ($repuid$)")
    ap.add_argument("--pid-oid", default="1.3.6.1.4.1.21367.13.20.1000", help="assigning authority of patient ids")
    ap.add_argument("--timeout", type=float, default=60, help="seconds per HTTP exchange")
    ap.add_argument("--dump", help="write each request and response to DIR/<test>/<section>/<step>.request.xml "
                                   "and .response")
    ap.add_argument("--dry-run", action="store_true", help="prepare requests (see --dump) without sending")
    ap.add_argument("--reason-width", type=int, default=600, help="truncate reasons to this many characters")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("tests", nargs="*", help="test ids (default: the collections, or the expected list)")
    a = ap.parse_args(argv)
    a.url = a.url.rstrip("/")
    if not os.path.isdir(os.path.join(a.testkit, "tests")):
        ap.error("no tests/ under --testkit %s" % a.testkit)
    expected_path = a.expected or os.path.join(here, "expected_pass.txt")
    expected = read_expected(expected_path) if os.path.exists(expected_path) else []
    tests = list(a.tests)
    if a.collections:
        tests += [t for t in collection_tests(a.testkit, a.collections.split(",")) if t not in tests]
    if not tests:
        tests = list(expected)
    if not tests:
        ap.error("no tests: name some, or give --collections or --expected")
    r = Runner(a)
    for t in tests:
        r.run_test(t)
    print("tests: %d passed, %d failed, %d skipped" % tuple(
        sum(1 for s in r.test_results.values() if s[0] == k) for k in ("PASS", "FAIL", "SKIP")))
    # Expected tests outside the selection (tests named on the command line) are not judged.
    regress = [t for t in expected if t in r.tests_done and r.tests_done[t] != "PASS" or
               t in tests and t not in r.tests_done]
    extra = [t for t in r.tests_done if r.tests_done[t] == "PASS" and t not in expected]
    if extra and expected:
        print("passing but not in %s: %s" % (os.path.basename(expected_path), " ".join(extra)))
    if regress:
        print("REGRESSIONS (expected to pass): %s" % " ".join(
            "%s[%s]" % (t, r.tests_done.get(t, "not run")) for t in regress))
    print("%d passed, %d failed, %d skipped" % (r.counts["PASS"], r.counts["FAIL"], r.counts["SKIP"]))
    return 1 if regress else 0


if __name__ == "__main__":
    sys.exit(main())
