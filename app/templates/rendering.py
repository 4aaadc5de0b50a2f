"""Templates rendered in a sandbox: no Python internals, no secrets, and bounded work.

A template sees plain dicts, strings and numbers only, no globals, a short list of filters, and
no function or method calls. Every operation that can make a value grow (``*``, ``**``, ``+``,
``~``, ``join``, ``replace``) is checked before it runs, loops share an iteration budget, and
the output is streamed and cut off at a size limit, so no template can take the process down.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from types import TracebackType
from typing import Any

from jinja2 import (
    StrictUndefined,
    TemplateError,
    TemplateSyntaxError,
    UndefinedError,
    meta,
    nodes,
    pass_eval_context,
)
from jinja2.environment import Template as CompiledTemplate
from jinja2.exceptions import SecurityError
from jinja2.filters import FILTERS
from jinja2.nodes import EvalContext
from jinja2.sandbox import SandboxedEnvironment
from jinja2.utils import missing
from jinja2.visitor import NodeTransformer
from markupsafe import soft_str

from app.core.errors import Invalid
from app.core.html import html_to_text, text_to_html
from app.templates.models import BodyFormat

MAX_RENDERED_CHARS = 1_000_000
"""The longest text a template may produce, and the longest value it may build on the way."""
MAX_LOOP_ITERATIONS = 10_000
"""Loop rounds one rendering may run, all loops together."""
_MAX_INT_BITS = 256
"""Integers a template computes stay below 2**256: arithmetic for a reply, not for a bomb."""

PLACEHOLDERS: Mapping[str, frozenset[str] | None] = {
    "customer": frozenset({"name", "first_name", "email", "number", "language"}),
    "organisation": frozenset({"name"}),
    "ticket": frozenset(
        {
            "number",
            "reference",
            "subject",
            "status",
            "priority",
            "category",
            "queue",
            "tags",
            "created_at",
            "custom_fields",
        }
    ),
    "agent": frozenset({"name", "email"}),
    "incident": frozenset({"title", "status_text", "next_update_at"}),
    "status_link": None,
}
"""The variables a template may use and, for objects, their fields (``None``: a plain value)."""

_LOOP_GUARD = "_loop_guard"
_ALLOWED_NODES: tuple[type[nodes.Node], ...] = (
    nodes.Template,
    nodes.Output,
    nodes.TemplateData,
    nodes.If,
    nodes.For,
    nodes.Assign,
    nodes.Name,
    nodes.Const,
    nodes.Getattr,
    nodes.Getitem,
    nodes.Slice,
    nodes.Filter,
    nodes.Test,
    nodes.Keyword,
    nodes.CondExpr,
    nodes.And,
    nodes.Or,
    nodes.Not,
    nodes.Neg,
    nodes.Pos,
    nodes.Compare,
    nodes.Operand,
    nodes.Concat,
    nodes.Add,
    nodes.Sub,
    nodes.Mul,
    nodes.Div,
    nodes.FloorDiv,
    nodes.Mod,
    nodes.Pow,
    nodes.List,
    nodes.Tuple,
    nodes.Dict,
    nodes.Pair,
)
"""Output, conditions, loops and ``{% set x = ... %}``; everything that could call code, read
other templates or buffer unbounded output (macros, blocks, includes, ``{% set %}...``) is not."""
_FORBIDDEN_WORDS = {
    nodes.Call: "calling functions or methods (use a filter)",
    nodes.Macro: "macros",
    nodes.CallBlock: "macros",
    nodes.Extends: "other templates",
    nodes.Include: "other templates",
    nodes.Import: "other templates",
    nodes.FromImport: "other templates",
    nodes.Block: "blocks",
    nodes.AssignBlock: "{% set %} blocks (use {% set name = value %})",
    nodes.FilterBlock: "{% filter %} blocks",
}


@dataclass(frozen=True)
class Rendered:
    subject: str | None
    body_text: str
    body_html: str


@dataclass
class _Rendering:
    """What one rendering may still spend, and where its variables sit (for messages)."""

    loops_left: int
    paths: dict[int, str]


_RENDERING: ContextVar[_Rendering] = ContextVar("template_rendering")


def _check_size(size: int, what: str) -> None:
    if size > MAX_RENDERED_CHARS:
        raise SecurityError(
            f"{what} would make a text of {size:,} characters; "
            f"at most {MAX_RENDERED_CHARS:,} are allowed."
        )


def _check_bits(bits: int, operator: str) -> None:
    if bits > _MAX_INT_BITS:
        raise SecurityError(f"`{operator}` would make a number too large for a template.")


def _repeated_size(left: Any, right: Any) -> int | None:
    """The length of ``left * right`` when it repeats a text or list."""
    for sequence, times in ((left, right), (right, left)):
        if isinstance(sequence, str | list | tuple) and isinstance(times, int):
            return len(sequence) * max(times, 0)
    return None


class _Sandbox(SandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "+"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        both_int = isinstance(left, int) and isinstance(right, int)
        if operator == "*":
            repeated = _repeated_size(left, right)
            if repeated is not None:
                _check_size(repeated, "`*`")
            elif both_int:
                _check_bits(left.bit_length() + right.bit_length(), operator)
        elif operator == "**":
            if both_int and right > 0 and abs(left) > 1:
                _check_bits(left.bit_length() * right, operator)
        elif isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
            _check_size(len(left) + len(right), "`+`")
        return super().call_binop(context, operator, left, right)


class _MissingValue(StrictUndefined):
    """Names the missing value by its place among the variables: ``ticket.custom_fields.x``."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        rendering = _RENDERING.get(None)
        parent = rendering.paths.get(id(self._undefined_obj)) if rendering else None
        if self._undefined_hint or self._undefined_obj is missing or parent is None:
            return super()._undefined_message
        return f"{parent}.{self._undefined_name} does not exist"


def _loop_guard(values: Iterable[Any]) -> Iterator[Any]:
    """Put around every loop's sequence: counts the rounds against the rendering's budget."""
    rendering = _RENDERING.get()
    for value in values:
        if rendering.loops_left <= 0:
            raise SecurityError(
                f"the loops would run more than {MAX_LOOP_ITERATIONS:,} rounds in total."
            )
        rendering.loops_left -= 1
        yield value


@pass_eval_context
def _join(eval_ctx: EvalContext, values: Iterable[Any], separator: str = "") -> str:
    items = list(values)
    _check_size(
        sum(len(soft_str(item)) for item in items) + len(separator) * max(len(items) - 1, 0),
        "joining",
    )
    joined: str = FILTERS["join"](eval_ctx, items, separator)  # Markup stays Markup
    return joined


@pass_eval_context
def _replace(
    eval_ctx: EvalContext, value: Any, old: str, new: str, count: int | None = None
) -> str:
    text = soft_str(value)
    found = len(text) + 1 if old == "" else text.count(old)
    if count is not None and count >= 0:
        found = min(found, count)
    _check_size(len(text) + found * max(len(new) - len(old), 0), "`replace`")
    replaced: str = FILTERS["replace"](eval_ctx, value, old, new, count)
    return replaced


def _date(value: Any, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """``{{ ticket.created_at|date('%d.%m.%Y') }}``: a date or time (or ISO text) formatted."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if not isinstance(moment, date):
        raise TypeError(f"the date filter needs a date or time, not {type(value).__name__}")
    return moment.strftime(fmt)


_FILTERS: dict[str, Any] = {
    **{
        name: FILTERS[name]
        for name in (
            "default",
            "d",
            "upper",
            "lower",
            "title",
            "capitalize",
            "trim",
            "truncate",
            "length",
            "count",
            "first",
            "last",
            "escape",
            "e",
            "dictsort",
        )
    },
    "join": _join,
    "replace": _replace,
    "date": _date,
    _LOOP_GUARD: _loop_guard,
}


def _environment(*, html: bool) -> _Sandbox:
    environment = _Sandbox(autoescape=html, undefined=_MissingValue, keep_trailing_newline=True)
    environment.globals.clear()
    environment.filters = _FILTERS
    return environment


_TEXT = _environment(html=False)
_HTML = _environment(html=True)


class _Guards(NodeTransformer):
    """Loops count their rounds; ``a ~ b`` is a size-checked join."""

    # Jinja's visitor dispatches on the node class name, hence the method names.
    def visit_For(self, node: nodes.For) -> nodes.Node:  # noqa: N802
        self.generic_visit(node)
        node.iter = nodes.Filter(node.iter, _LOOP_GUARD, [], [], None, None, lineno=node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:  # noqa: N802
        self.generic_visit(node)
        joined = nodes.List(node.nodes, lineno=node.lineno)
        return nodes.Filter(joined, "join", [], [], None, None, lineno=node.lineno)


def _refuse_forbidden(tree: nodes.Template) -> None:
    for node in tree.find_all(nodes.Node):
        if not isinstance(node, _ALLOWED_NODES):
            what = _FORBIDDEN_WORDS.get(type(node), type(node).__name__)
            raise TemplateSyntaxError(f"{what} cannot be used in a template", node.lineno)
        if isinstance(node, nodes.For) and node.recursive:
            raise TemplateSyntaxError("recursive loops cannot be used in a template", node.lineno)
        key = _static_key(node)
        if key is not None and key.startswith("_"):
            raise TemplateSyntaxError(
                f"names starting with an underscore cannot be used ({key!r})", node.lineno
            )


def _static_key(node: nodes.Node) -> str | None:
    """The field ``x.name`` or ``x['name']`` reads, when written in the template."""
    if isinstance(node, nodes.Getattr):
        return node.attr
    if (
        isinstance(node, nodes.Getitem)
        and isinstance(node.arg, nodes.Const)
        and isinstance(node.arg.value, str)
    ):
        return node.arg.value
    return None


def _check_placeholders(tree: nodes.Template) -> None:
    names = list(tree.find_all(nodes.Name))
    assigned = {name.name for name in names if name.ctx != "load"}
    unknown = meta.find_undeclared_variables(tree) - PLACEHOLDERS.keys()
    # `self` is Jinja's handle on the template itself, not a variable.
    unknown |= {"self"} & {name.name for name in names if name.ctx == "load"} - assigned
    for name in names:
        if name.name in unknown:
            raise TemplateSyntaxError(
                f"unknown placeholder {name.name!r}; available: {', '.join(PLACEHOLDERS)}",
                name.lineno,
            )
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        assert isinstance(node, nodes.Getattr | nodes.Getitem)
        key = _static_key(node)
        target = node.node
        if key is None or not isinstance(target, nodes.Name) or target.name in assigned:
            continue
        fields = PLACEHOLDERS.get(target.name)
        if fields is not None and key not in fields:
            raise TemplateSyntaxError(
                f"{target.name} has no field {key!r}; it has: {', '.join(sorted(fields))}",
                node.lineno,
            )


def _parse(source: str, environment: _Sandbox) -> nodes.Template:
    tree = environment.parse(source)
    _refuse_forbidden(tree)
    return tree


@lru_cache(maxsize=256)
def _compiled(source: str, html: bool) -> CompiledTemplate:
    environment = _HTML if html else _TEXT
    tree = _Guards().visit(_parse(source, environment))
    tree.set_environment(environment)
    return environment.from_string(tree)


@contextmanager
def _nesting_limit() -> Iterator[None]:
    """Python's own limits (recursion, nested blocks) met by a deeply nested template."""
    try:
        yield
    except (RecursionError, SyntaxError) as exc:
        raise TemplateSyntaxError("the template nests too deeply", 0) from exc


def check_source(source: str, *, html: bool, field: str) -> None:
    """Refuse, as a problem pointing at ``field``, a template that cannot render: bad syntax,
    unknown placeholders or fields, unknown filters, constructs templates may not use."""
    try:
        with _nesting_limit():
            _check_placeholders(_parse(source, _HTML if html else _TEXT))
            _compiled(source, html)
    except TemplateSyntaxError as exc:
        reason = str(exc.message).rstrip(".")
        detail = f"Line {exc.lineno}: {reason}" if exc.lineno else reason.capitalize()
        raise Invalid(f"{detail}.", field=field) from exc


def _template_line(traceback: TracebackType | None) -> int | None:
    """The template line an error happened on (Jinja points the traceback at it)."""
    line = None
    while traceback is not None:
        if traceback.tb_frame.f_code.co_filename == "<template>":
            line = traceback.tb_lineno
        traceback = traceback.tb_next
    return line


def _render(source: str, html: bool, variables: Mapping[str, Any], part: str) -> str:
    chunks: list[str] = []
    size = 0
    try:
        with _nesting_limit():
            template = _compiled(source, html)
        for chunk in template.generate(variables):
            size += len(chunk)
            _check_size(size, f"the {part}")
            chunks.append(chunk)
    except (
        TemplateError,
        ArithmeticError,
        AttributeError,
        TypeError,
        ValueError,
        LookupError,
    ) as exc:
        # Raised by the template's own expressions: its author's mistake, not ours.
        line = exc.lineno if isinstance(exc, TemplateSyntaxError) else None
        line = line or _template_line(exc.__traceback__)
        where = f" (line {line})" if line else ""
        reason = (exc.message if isinstance(exc, TemplateError) else None) or str(exc)
        if isinstance(exc, UndefinedError):
            reason = f"a placeholder is missing: {reason}"
        raise Invalid(
            f"The {part} of the template cannot be filled in{where}: {reason.rstrip('.')}."
        ) from exc
    return "".join(chunks)


def _variable_paths(variables: Mapping[str, Any], prefix: str = "") -> dict[int, str]:
    paths: dict[int, str] = {}
    for name, value in variables.items():
        if isinstance(value, Mapping):
            path = f"{prefix}{name}"
            paths[id(value)] = path
            paths.update(_variable_paths(value, f"{path}."))
    return paths


def render_source(
    subject: str | None, body: str, body_format: BodyFormat, variables: Mapping[str, Any]
) -> Rendered:
    """Fill in a template's subject and body; the other body part is made from the rendered
    one. A value that is missing or an operation refused is an ``Invalid`` (422) naming it."""
    token = _RENDERING.set(
        _Rendering(loops_left=MAX_LOOP_ITERATIONS, paths=_variable_paths(variables))
    )
    try:
        rendered_subject = None
        if subject is not None:
            # One header line: whatever the values hold, no line breaks reach the mail header.
            rendered_subject = " ".join(_render(subject, False, variables, "subject").split())
        if body_format is BodyFormat.html:
            body_html = _render(body, True, variables, "body")
            body_text = html_to_text(body_html)
        else:
            body_text = _render(body, False, variables, "body")
            body_html = text_to_html(body_text)
    finally:
        _RENDERING.reset(token)
    return Rendered(subject=rendered_subject, body_text=body_text, body_html=body_html)
