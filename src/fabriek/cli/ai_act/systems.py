"""AI system commands: `fabriek ai-systems` (register and list) and `fabriek classify` (the EU
AI Act risk-classification questionnaire, guided in the terminal or answered by script)."""

from __future__ import annotations

from typing import Annotated, Literal

import typer
from rich.markup import escape
from rich.prompt import Prompt

from fabriek.cli.app import JsonFlag, Limit, app
from fabriek.cli.connection import client
from fabriek.cli.output import console, print_json, print_table
from fabriek.domain.ai_act.rule_book import AnswerType, Language
from fabriek.domain.ai_act.systems import AiSystemDraft, Classification, QuestionOut, ResultOut
from fabriek.domain.errors import FabriekError
from fabriek.sdk import ApiError
from fabriek.sdk.client import FabriekClient
from fabriek.sdk.core import validated

LangOpt = Annotated[str, typer.Option("--lang", help="language of questions and results: en or nl")]
ProjectOpt = Annotated[str | None, typer.Option("--project", "-A", help="only this project")]

ai_systems_app = typer.Typer(
    help="AI systems of your projects and their EU AI Act risk class.", no_args_is_help=False
)
app.add_typer(ai_systems_app, name="ai-systems")

WORDS: dict[Language, dict[str, str]] = {
    "en": {"yes": "yes", "no": "no", "now": "applies now", "later": "not yet", "none": "none",
           "numbers": "Numbers, comma-separated (0: none)", "number": "Number",
           "answer": "Answer", "title": "Risk classification of", "tier": "Tier",
           "why": "Why", "rests": "Rests on", "yours": "Your obligations",
           "duty": "Obligation", "applies": "Applies from", "status": "Status",
           "no_duties": "No obligations fall on your role(s).",
           "others": "more obligation(s) fall on other operators",
           "unchecked": "* text or date not yet checked against the Official Journal (the "
                        "2026 amendment); see docs/ai-act.md"},
    "nl": {"yes": "ja", "no": "nee", "now": "geldt nu", "later": "nog niet", "none": "geen",
           "numbers": "Nummers, gescheiden door komma's (0: geen)", "number": "Nummer",
           "answer": "Antwoord", "title": "Risicoclassificatie van", "tier": "Categorie",
           "why": "Waarom", "rests": "Rust op", "yours": "Uw verplichtingen",
           "duty": "Verplichting", "applies": "Geldt vanaf", "status": "Status",
           "no_duties": "Er vallen geen verplichtingen op uw rol(len).",
           "others": "verplichting(en) meer vallen op andere partijen",
           "unchecked": "* tekst of datum nog niet getoetst aan het Publicatieblad (de "
                        "wijziging van 2026); zie docs/ai-act.md"},
}  # fmt: skip


def _language(value: str) -> Language:
    if value not in ("en", "nl"):
        raise typer.BadParameter("--lang is en or nl")
    lang: Literal["en", "nl"] = "en" if value == "en" else "nl"
    return lang


@ai_systems_app.callback(invoke_without_command=True)
def ai_systems(
    ctx: typer.Context,
    project: ProjectOpt = None,
    name: Annotated[str | None, typer.Option(help="part of the name")] = None,
    as_json: JsonFlag = False,
    limit: Limit = 100,
) -> None:
    """List the AI systems you can see, with their risk tiers."""
    if ctx.invoked_subcommand is not None:
        return
    with client() as c:
        found = c.ai_act.systems(limit=limit, project=project, name=name)
    if as_json:
        print_json(found.items)
        return
    rows = []
    for s in found.items:
        cls = s.classification
        status = "-" if cls is None else ("finished" if cls.finished else "in progress")
        tiers = ", ".join(cls.tiers) if cls and cls.tiers else "-"
        rows.append((s.id, s.name, s.project, s.role, s.provider or "-", s.model or "-", tiers,
                     status))  # fmt: skip
    print_table(
        None, ["#", "System", "Project", "Role", "Provider", "Model", "Risk tier(s)",
               "Classification"], rows, f"{found.total} AI system(s)",
    )  # fmt: skip


@ai_systems_app.command("new")
def new(
    name: Annotated[str, typer.Argument(help="unique name, e.g. cv-screener")],
    project: Annotated[str, typer.Option("--project", "-A", help="the project it belongs to")],
    purpose: Annotated[str, typer.Option(help="its intended purpose, in a sentence or more")],
    provider: Annotated[str, typer.Option(help="the legal entity placing it on the market")],
    role: Annotated[str, typer.Option(help="your project's role: provider or deployer")] = (
        "provider"
    ),
    model: Annotated[
        str | None, typer.Option(help="NAME:VERSION of the registered model it runs on")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Register an AI system for a project; then `fabriek classify NAME`."""
    body = {"project": project, "name": name, "intended_purpose": purpose,
            "provider": provider, "role": role, "model": model}  # fmt: skip
    with client() as c:
        made = c.ai_act.register_system(validated(AiSystemDraft, body))
    if as_json:
        print_json(made)
        return
    console.print(
        f"Registered AI system [bold]{escape(made.name)}[/] (#{made.id}) in {escape(made.project)}."
    )
    console.print(
        f"Classify it under the EU AI Act: fabriek classify {made.name}", style="dim", markup=False
    )


@ai_systems_app.command("show")
def show(
    system: Annotated[str, typer.Argument(help="AI system name or number")],
    as_json: JsonFlag = False,
    lang: LangOpt = "en",
) -> None:
    """One AI system: its classification's answers (each with the article it rests on),
    and the next question or the result."""
    language = _language(lang)
    with client() as c:
        found = c.ai_act.system(system)
        state = c.ai_act.classification(system)
    if as_json:
        print_json({"system": found, "classification": state})
        return
    console.print(f"[bold]{escape(found.name)}[/] (#{found.id}), project {escape(found.project)}, "
                  f"{found.role}; provider {escape(found.provider or '-')}")  # fmt: skip
    console.print(found.intended_purpose, style="dim", markup=False)
    _print_answers(state, language)
    if state.result is not None:
        _print_result(state, state.result, language)
    elif state.next_question is not None:
        q = state.next_question
        console.print(f"Next question: {q.id} — {q.text.in_(language)}  ({q.cites})", markup=False)
        console.print(f"Go on with: fabriek classify {found.name}", style="dim", markup=False)


def _print_answers(state: Classification, lang: Language) -> None:
    if not state.answers:
        console.print("No answers yet.", style="dim")
        return
    rows = [
        (a.question, a.shown.in_(lang), "; ".join(a.cites), a.answered_by or "-",
         f"{a.answered_at:%Y-%m-%d %H:%M}" if a.answered_at else "-")
        for a in state.answers
    ]  # fmt: skip
    print_table(
        f"Answers (rules {state.rules_version})",
        ["Question", "Answer", "Rests on", "By", "At (UTC)"],
        rows,
    )


def _print_result(state: Classification, result: ResultOut, lang: Language) -> None:
    words = WORDS[lang]
    rows = [
        (t.name.in_(lang), " ".join(r.because.in_(lang) for r in t.because),
         ", ".join(r.cites for r in t.because))
        for t in result.tiers
    ]  # fmt: skip
    print_table(f"{words['title']} {state.system}", [words["tier"], words["why"], words["rests"]],
                rows)  # fmt: skip
    yours = [o for o in result.obligations if o.yours]
    others = [o for o in result.obligations if not o.yours]
    if yours:
        duty_rows = [
            (o.text.in_(lang), o.cites + ("" if o.confirmed else " *"),
             f"{o.applies_from:%Y-%m-%d}",
             words["now"] if o.applies_now else words["later"])
            for o in yours
        ]  # fmt: skip
        print_table(words["yours"],
                    [words["duty"], words["rests"], words["applies"], words["status"]],
                    duty_rows)  # fmt: skip
    elif result.in_scope:
        console.print(words["no_duties"], markup=False)
    if others:
        roles = sorted({r for o in others for r in o.roles})
        console.print(
            f"{len(others)} {words['others']} ({', '.join(roles)}); --json lists them.",
            style="dim",
            markup=False,
        )
    if any(not o.confirmed for o in result.obligations):
        console.print(words["unchecked"], style="dim", markup=False)


def _print_question(q: QuestionOut, lang: Language, answered: int) -> None:
    console.print()
    console.print(f"[dim]{q.stage} · question {answered + 1} · {q.cites}[/]")
    console.print(f"[bold]{q.text.in_(lang)}[/]")
    if q.help:
        console.print(q.help.in_(lang), style="dim", markup=False)
    for i, o in enumerate(q.options, start=1):
        console.print(f"  {i:>2}. {o.text.in_(lang)} [dim]({o.cites})[/]")


def _ask(q: QuestionOut, lang: Language) -> str | list[str]:
    """One answer, at the terminal, in the API's terms (yes/no, an option id, option ids)."""
    words = WORDS[lang]
    if q.type is AnswerType.YES_NO:
        said = Prompt.ask(words["answer"], choices=[words["yes"], words["no"]], console=console)
        return "yes" if said == words["yes"] else "no"
    numbers = [str(i) for i in range(1, len(q.options) + 1)]
    if q.type is AnswerType.ONE_OF:
        said = Prompt.ask(words["number"], choices=numbers, console=console)
        return q.options[int(said) - 1].id
    while True:
        said = Prompt.ask(words["numbers"], console=console)
        picked = [p.strip() for p in said.split(",") if p.strip()]
        if picked == ["0"]:
            return []
        if picked and all(p in numbers for p in picked):
            return [q.options[int(p) - 1].id for p in dict.fromkeys(picked)]
        console.print(f"[red]Give numbers from 1 to {len(numbers)}, or 0 for none.[/]")


def _parse_answers(given: list[str]) -> dict[str, str]:
    answers: dict[str, str] = {}
    for item in given:
        question, sep, value = item.partition("=")
        if not sep or not question.strip():
            raise typer.BadParameter(
                f"--answer takes QUESTION=VALUE, e.g. profiling=no; not {item!r}"
            )
        if question.strip() in answers:
            raise typer.BadParameter(f"--answer {question.strip()} is given twice")
        answers[question.strip()] = value.strip()
    return answers


def _guided(c: FabriekClient, system: str, state: Classification, lang: Language) -> Classification:
    """Ask each next question until the walk ends; a refused answer is explained and asked
    again. Every answer is stored as it is given, so a stopped session can go on later."""
    if state.answers:
        console.print(f"Going on with the {len(state.answers)} answer(s) so far "
                      f"(--restart starts afresh).", style="dim", markup=False)  # fmt: skip
    while state.next_question is not None:
        q = state.next_question
        _print_question(q, lang, len(state.answers))
        try:
            value = _ask(q, lang)
        except (EOFError, KeyboardInterrupt):
            raise FabriekError(
                f"stopped at {q.id}; the answers so far are kept: `fabriek classify {system}` "
                "goes on"
            ) from None
        try:
            state = c.ai_act.answer_classification(system, {q.id: value})
        except ApiError as refused:
            if refused.status != 422:
                raise
            console.print(f"[red]{escape(str(refused.detail))}[/]")
            continue
        if state.dropped:
            console.print(f"Dropped answers no longer asked: {', '.join(state.dropped)}",
                          style="dim", markup=False)  # fmt: skip
    return state


@app.command()
def classify(
    system: Annotated[str, typer.Argument(help="AI system name or number")],
    answer: Annotated[
        list[str] | None,
        typer.Option(
            "--answer",
            help="QUESTION=VALUE, repeated, instead of prompts: yes/no, an option id, or "
            "option ids comma-separated (none for none)",
        ),
    ] = None,
    restart: Annotated[
        bool, typer.Option("--restart", help="start a new classification; the old one is kept")
    ] = False,
    lang: LangOpt = "en",
    as_json: JsonFlag = False,
) -> None:
    """Classify an AI system under the EU AI Act: the questionnaire walks scope and
    exclusions, prohibited practices, Annex I products, Annex III uses, the Art. 6(3)
    derogation, Art. 50 transparency and general-purpose AI, then shows the tier(s), your
    obligations and from when they apply. Interactive unless --answer is given."""
    language = _language(lang)
    answers = _parse_answers(answer or [])
    with client() as c:
        state = (
            c.ai_act.start_classification(system) if restart else c.ai_act.classification(system)
        )
        if answers:
            state = c.ai_act.answer_classification(system, answers)
        elif not as_json:
            state = _guided(c, system, state, language)
            console.print()
    if as_json:
        print_json(state)
    elif state.result is not None:
        if state.dropped:
            console.print(f"Dropped answers no longer asked: {', '.join(state.dropped)}",
                          style="dim", markup=False)  # fmt: skip
        _print_result(state, state.result, language)
    if state.next_question is not None:
        q = state.next_question
        raise FabriekError(
            f"the classification is not finished: next is {q.id} ({q.text.in_(language)}); "
            f"give --answer {q.id}=..."
        )
