"""What an analyst's words mean in a filing's own words.

A question asks for a measure ("Is 3M a capital-intensive business?", "Adobe's operating margin",
"days payable outstanding"); a filing states the line items the measure is made of ("Purchases
of property and equipment", "Operating income", "Accounts payable") in its statement tables.
Neither the embedder nor keyword search links the two, so the closest passages are prose that
repeats the question's words. Such a question is therefore also searched for the line items that
define the measure (kb.answer.retrieve.line_item_hop), which brings the statement table holding
them among the evidence.

The glossary holds common measures of financial analysis. A user adds their own terms with the
`glossary` setting: a text file of `term | the words it is read as` lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from kb.errors import ConfigError


@dataclass(frozen=True)
class Term:
    """A measure (`pattern`, matched case-insensitively in the question) and the words of the
    line items it is computed from (`means`)."""

    pattern: re.Pattern[str]
    means: str


def _term(pattern: str, means: str) -> Term:
    return Term(re.compile(pattern, re.IGNORECASE), means)


_INCOME = "consolidated statements of income operations"
_CASH_FLOWS = "consolidated statements of cash flows"
_BALANCE = "consolidated balance sheets"

FINANCE: tuple[Term, ...] = (
    _term(r"operating (profit )?margin|ebit margin", f"operating income total revenue net sales {_INCOME}"),
    _term(r"gross (profit )?margin", f"gross profit cost of sales cost of revenue net sales {_INCOME}"),
    _term(r"net (profit |income )?margin|profit margin", f"net income total revenue net sales {_INCOME}"),
    _term(
        r"free cash ?flow|\bfcf\b|cash ?flow conversion|cash conversion",
        f"net cash provided by operating activities purchases of property and equipment capital expenditures "
        f"net income {_CASH_FLOWS}",
    ),
    _term(r"days payables?( outstanding)?|\bdpo\b|payables? turnover", f"accounts payable cost of sales {_BALANCE}"),
    _term(
        r"days sales outstanding|\bdso\b|receivables? turnover",
        f"accounts receivable net revenue net sales {_BALANCE}",
    ),
    _term(
        r"inventory turnover|days (of )?inventory|\bdio\b|sold (its|their) inventory",
        f"inventories cost of products sold cost of sales {_BALANCE}",
    ),
    _term(
        r"quick ratio|acid[- ]test",
        f"cash and cash equivalents marketable securities accounts receivable total current liabilities {_BALANCE}",
    ),
    _term(
        r"current ratio|working capital|liquidity",
        f"total current assets total current liabilities cash and cash equivalents {_BALANCE}",
    ),
    _term(
        r"capital[- ]intensi|\bcapex\b|capital expenditures?",
        "capital expenditures purchases of property and equipment property plant and equipment net total assets",
    ),
    _term(r"\bpp&e\b|\bppne\b|\bpp and e\b|fixed assets", f"property plant and equipment net {_BALANCE}"),
    _term(
        r"\bdebt\b|leverage|borrowings",
        f"long-term debt short-term borrowings debt maturing within one year total debt {_BALANCE}",
    ),
    _term(r"interest coverage|times interest earned", f"operating income interest expense {_INCOME}"),
    _term(r"\bebitda", f"operating income depreciation and amortization {_INCOME}"),
    _term(r"\bebit\b", f"operating income interest expense {_INCOME}"),
    _term(r"return on (total )?assets|\broa\b", "net income total assets"),
    _term(r"return on (shareholders'? |stockholders'? )?equity|\broe\b", "net income total shareholders equity"),
    _term(
        r"revenue growth|(change|growth) in (total )?(revenue|sales)|top[- ]?line|high[- ]growth|sales growth",
        f"total revenue net sales increased percent {_INCOME}",
    ),
    _term(r"dividends?", "dividends declared per share cash dividends paid"),
    _term(r"effective tax rate|tax rate", "provision for income taxes income before income taxes effective tax rate"),
    _term(r"earnings per share|\beps\b", "earnings per share diluted basic"),
    _term(r"buy ?backs?|share repurchases?|repurchased? (its |their )?(shares|stock)", "repurchases of common stock"),
    _term(r"asset turnover", "total revenue net sales total assets"),
    _term(
        r"(operating|investing|financing) activities|cash flows? from (operations|investing|financing)",
        f"net cash provided by used in operating activities investing activities financing activities {_CASH_FLOWS}",
    ),
    _term(r"acquisitions?|acquired", "acquisitions business combinations acquired purchase price"),
    _term(r"legal (battles?|proceedings|matters)|litigation|lawsuits?", "legal proceedings litigation contingencies"),
)


def parse_glossary(text: str, source: str) -> tuple[Term, ...]:
    """Terms from `term | words` lines (a term is a phrase, matched as whole words; # starts a comment)."""
    terms = []
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        term, sep, means = (part.strip() for part in line.partition("|"))
        if not sep or not term or not means:
            raise ConfigError(f"{source}:{n}: expected 'term | the words it is read as', got {raw.strip()!r}")
        terms.append(_term(r"\b" + r"\s+".join(map(re.escape, term.split())) + r"\b", means))
    return tuple(terms)


@lru_cache(maxsize=8)
def _user_terms(path: str) -> tuple[Term, ...]:
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read the glossary ({e.__class__.__name__}: {e})") from e
    return parse_glossary(text, path)


def terms_for(glossary: str = "") -> tuple[Term, ...]:
    """The user's terms (from the `glossary` file, if any) before the built-in ones."""
    return (_user_terms(glossary) if glossary else ()) + FINANCE


def meanings(question: str, terms: tuple[Term, ...] = FINANCE) -> list[str]:
    """The line-item words of every term the question uses, in glossary order."""
    return [t.means for t in terms if t.pattern.search(question)]
