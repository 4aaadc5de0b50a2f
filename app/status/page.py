"""The status page as HTML for the customer's browser; every value is escaped."""

from __future__ import annotations

from jinja2 import Environment

from app.status.schemas import StatusRead

_ENVIRONMENT = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)

_PAGE = _ENVIRONMENT.from_string(
    """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{{ s.reference }} {{ s.subject }}</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem;
       color: #222; line-height: 1.5; }
.status { display: inline-block; padding: .2rem .6rem; border-radius: .3rem; background: #eef; }
.message { border-left: 3px solid #ccd; padding: .2rem 1rem; margin: 1rem 0; }
.message.support { border-color: #68a; }
.meta { color: #666; font-size: .9rem; }
pre { white-space: pre-wrap; font-family: inherit; margin: .3rem 0; }
</style>
</head>
<body>
<h1>{{ s.subject }}</h1>
<p>Ticket {{ s.reference }} &middot; <span class="status">{{ s.status_text }}</span></p>
<p class="meta">Opened {{ s.created_at.strftime("%Y-%m-%d %H:%M") }} UTC,
last change {{ s.updated_at.strftime("%Y-%m-%d %H:%M") }} UTC</p>
{% for m in s.messages %}
<div class="message {{ m.author.value }}">
<div class="meta">{{ "You" if m.author.value == "customer" else "Support" }},
{{ m.written_at.strftime("%Y-%m-%d %H:%M") }} UTC</div>
<pre>{{ m.text }}</pre>
</div>
{% endfor %}
<p class="meta">To add something, answer the last mail you got from us and keep
{{ s.reference }} in the subject.</p>
</body>
</html>
"""
)


def render_page(status: StatusRead) -> str:
    return _PAGE.render(s=status)
