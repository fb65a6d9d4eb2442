"""Deterministic synthetic lead records with ground truth, for demos and benchmarks.

`generate` / `iter_generate` produce raw records as four demo sources would send them (flat
payloads keyed by `Candidate` field names, values written the way each source writes them),
together with the truth a benchmark needs:

* `entity_id`: records sharing it are the same person + property lead (true duplicates);
* `household_id`: records sharing it are at the same address; two different people in one
  household share a `household_id` but not an `entity_id` (they must NOT be merged);
* `is_fraud`: the record was made to look like fraud (test names, disposable e-mail, toll-free
  phone, absurd price, coordinates far away, one IP submitting many forms, missing consent).

Everything is drawn from `random.Random(seed)`: the same arguments give the same records.
Places are real: every property sits at a STANDARD, active ZIP inside its market's states and
bounding box, and every genuine phone number is a valid US number in one of the market's area
codes.
"""

from __future__ import annotations

import bisect
import functools
import gc
import itertools
import math
import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, TypeVar

import phonenumbers
import zipcodes
from nicknames import NickNamer

from aiqleads.ingest.connectors.base import RawRecord
from aiqleads.markets.catalog import Market, load_markets

__all__ = [
    "DEMO_SOURCES",
    "PairScore",
    "SyntheticRecord",
    "duplicate_pairs",
    "entity_clusters",
    "generate",
    "household_pairs",
    "iter_generate",
    "score_pairs",
]

DEMO_SOURCES: tuple[str, ...] = ("demo-mls", "demo-webform", "demo-facebook", "demo-listings")

_MLS, _WEBFORM, _FACEBOOK, _LISTINGS = DEMO_SOURCES
_CONSENT_SOURCES: Final = frozenset({_WEBFORM, _FACEBOOK})
_KEY_PREFIX: Final = {_MLS: "MLS", _WEBFORM: "WF", _FACEBOOK: "FB", _LISTINGS: "LST"}

# Records are emitted through a shuffle window this large, so the copies of one entity are
# spread out instead of adjacent, while `iter_generate` still streams in constant memory.
_WINDOW: Final = 8192


@dataclass(frozen=True, slots=True)
class SyntheticRecord:
    """One raw record plus the ground truth about it."""

    source: str
    record: RawRecord
    entity_id: str
    household_id: str
    is_fraud: bool


T = TypeVar("T")


def _cum(weights: Sequence[float]) -> tuple[float, ...]:
    """Cumulative weights, for `_Rand.weighted`."""
    return tuple(itertools.accumulate(weights))


class _Rand:
    """`random.Random(seed)` with cheaper draws: everything derives from `.random()`.

    The stdlib's `randint`/`choice`/`choices` cost microseconds each (rejection sampling,
    argument checks); a few dozen draws per record made them the generator's main cost.
    """

    __slots__ = ("_rng", "random")

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)
        self.random = self._rng.random

    def randint(self, a: int, b: int) -> int:
        return a + int(self.random() * (b - a + 1))

    def randrange(self, n: int) -> int:
        return int(self.random() * n)

    def choice(self, seq: Sequence[T]) -> T:
        return seq[int(self.random() * len(seq))]

    def weighted(self, items: Sequence[T], cum: Sequence[float]) -> T:
        """One of `items`, weighted by the cumulative weights `cum` (see `_cum`)."""
        return items[bisect.bisect_right(cum, self.random() * cum[-1])]

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.random()

    def gauss(self, mu: float, sigma: float) -> float:
        return self._rng.gauss(mu, sigma)

    def triangular(self, low: float, high: float, mode: float) -> float:
        return self._rng.triangular(low, high, mode)

    def getrandbits(self, k: int) -> int:
        return self._rng.getrandbits(k)

    def shuffle(self, items: list[T]) -> None:
        self._rng.shuffle(items)


# --------------------------------------------------------------------------------------------
# Embedded reference data
# --------------------------------------------------------------------------------------------

FIRST_NAMES: Final[tuple[str, ...]] = (
    "James", "Robert", "John", "Michael", "David", "William", "Richard", "Joseph", "Thomas",
    "Christopher", "Charles", "Daniel", "Matthew", "Anthony", "Mark", "Donald", "Steven",
    "Andrew", "Paul", "Joshua", "Kenneth", "Kevin", "Brian", "George", "Timothy", "Ronald",
    "Jason", "Edward", "Jeffrey", "Ryan", "Jacob", "Gary", "Nicholas", "Eric", "Jonathan",
    "Stephen", "Larry", "Justin", "Scott", "Brandon", "Benjamin", "Samuel", "Gregory",
    "Alexander", "Patrick", "Frank", "Raymond", "Jack", "Dennis", "Jerry", "Tyler", "Aaron",
    "Jose", "Adam", "Nathan", "Henry", "Zachary", "Douglas", "Peter", "Kyle", "Noah", "Ethan",
    "Jeremy", "Walter", "Christian", "Keith", "Roger", "Terry", "Austin", "Sean", "Gerald",
    "Carl", "Harold", "Dylan", "Arthur", "Lawrence", "Jordan", "Jesse", "Bryan", "Billy",
    "Bruce", "Gabriel", "Joe", "Logan", "Alan", "Juan", "Albert", "Willie", "Elijah", "Wayne",
    "Randy", "Vincent", "Mason", "Roy", "Ralph", "Bobby", "Russell", "Bradley", "Philip",
    "Eugene", "Louis", "Harry", "Howard", "Carlos", "Luis", "Miguel", "Victor", "Martin",
    "Travis", "Shawn", "Chad", "Derek", "Marcus", "Cody", "Caleb", "Luke", "Isaac", "Evan",
    "Hunter", "Connor", "Jared", "Tanner", "Garrett", "Trevor", "Colin", "Spencer", "Dustin",
    "Clayton", "Wesley", "Mitchell", "Marco", "Antonio", "Manuel", "Jorge", "Ricardo",
    "Eduardo", "Fernando", "Rafael", "Diego", "Alejandro", "Javier", "Andres", "Hector", "Ivan",
    "Oscar", "Sergio", "Ruben", "Omar", "Raul", "Pedro", "Francisco", "Roberto", "Darren",
    "Troy", "Curtis", "Leonard", "Stanley", "Glenn", "Frederick", "Theodore", "Vernon",
    "Calvin", "Nathaniel", "Dominic", "Maxwell", "Owen", "Liam", "Lucas", "Levi", "Wyatt",
    "Grant", "Blake", "Mary", "Patricia", "Jennifer", "Linda", "Elizabeth", "Barbara", "Susan",
    "Jessica", "Sarah", "Karen", "Lisa", "Nancy", "Betty", "Margaret", "Sandra", "Ashley",
    "Kimberly", "Emily", "Donna", "Michelle", "Carol", "Amanda", "Dorothy", "Melissa",
    "Deborah", "Stephanie", "Rebecca", "Sharon", "Laura", "Cynthia", "Kathleen", "Amy",
    "Angela", "Shirley", "Anna", "Brenda", "Pamela", "Emma", "Nicole", "Helen", "Samantha",
    "Katherine", "Christine", "Debra", "Rachel", "Carolyn", "Janet", "Catherine", "Maria",
    "Heather", "Diane", "Ruth", "Julie", "Olivia", "Joyce", "Virginia", "Victoria", "Kelly",
    "Lauren", "Christina", "Joan", "Evelyn", "Judith", "Megan", "Andrea", "Cheryl", "Hannah",
    "Jacqueline", "Martha", "Gloria", "Teresa", "Ann", "Sara", "Madison", "Frances", "Kathryn",
    "Janice", "Jean", "Abigail", "Alice", "Judy", "Sophia", "Grace", "Denise", "Amber", "Doris",
    "Marilyn", "Danielle", "Beverly", "Isabella", "Theresa", "Diana", "Natalie", "Brittany",
    "Charlotte", "Marie", "Kayla", "Alexis", "Lori", "Tiffany", "Vanessa", "Monica",
    "Veronica", "Erica", "Crystal", "Erin", "Tracy", "Wendy", "Dawn", "Holly", "Courtney",
    "Allison", "Leslie", "Kristen", "Caroline", "Whitney", "Chelsea", "Brooke", "Haley",
    "Sydney", "Morgan", "Taylor", "Paige", "Jasmine", "Gabriela", "Adriana", "Alejandra",
    "Daniela", "Lucia", "Rosa", "Carmen", "Ana", "Sofia", "Valeria", "Yesenia", "Guadalupe",
    "Leticia", "Claudia", "Silvia", "Elena", "Irene", "Lillian", "Rose", "Joanne", "Peggy",
    "Sally", "Connie", "Tammy", "Rhonda", "Vicki", "Kristin", "Erika", "Melanie", "Audrey",
    "Chloe", "Zoe", "Mia", "Ava", "Ella", "Avery", "Harper", "Aubrey", "Layla",
)  # fmt: skip

SURNAMES: Final[tuple[str, ...]] = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor",
    "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez",
    "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright",
    "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall",
    "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "Gomez", "Phillips", "Evans",
    "Turner", "Diaz", "Parker", "Cruz", "Edwards", "Collins", "Reyes", "Stewart", "Morris",
    "Morales", "Murphy", "Cook", "Rogers", "Gutierrez", "Ortiz", "Morgan", "Cooper",
    "Peterson", "Bailey", "Reed", "Kelly", "Howard", "Ramos", "Kim", "Cox", "Ward",
    "Richardson", "Watson", "Brooks", "Chavez", "Wood", "James", "Bennett", "Gray", "Mendoza",
    "Ruiz", "Hughes", "Price", "Alvarez", "Castillo", "Sanders", "Patel", "Myers", "Long",
    "Ross", "Foster", "Jimenez", "Powell", "Jenkins", "Perry", "Russell", "Sullivan", "Bell",
    "Coleman", "Butler", "Henderson", "Barnes", "Gonzales", "Fisher", "Vasquez", "Simmons",
    "Romero", "Jordan", "Patterson", "Alexander", "Hamilton", "Graham", "Reynolds", "Griffin",
    "Wallace", "Moreno", "West", "Cole", "Hayes", "Bryant", "Herrera", "Gibson", "Ellis",
    "Tran", "Medina", "Aguilar", "Stevens", "Murray", "Ford", "Castro", "Marshall", "Owens",
    "Harrison", "Fernandez", "McDonald", "Woods", "Washington", "Kennedy", "Wells", "Vargas",
    "Henry", "Chen", "Freeman", "Webb", "Tucker", "Guzman", "Burns", "Crawford", "Olson",
    "Simpson", "Porter", "Hunter", "Gordon", "Mendez", "Silva", "Shaw", "Snyder", "Mason",
    "Dixon", "Munoz", "Hunt", "Hicks", "Holmes", "Palmer", "Wagner", "Black", "Robertson",
    "Boyd", "Rose", "Stone", "Salazar", "Fox", "Warren", "Mills", "Meyer", "Rice", "Schmidt",
    "Garza", "Daniels", "Ferguson", "Nichols", "Stephens", "Soto", "Weaver", "Ryan",
    "Gardner", "Payne", "Grant", "Dunn", "Kelley", "Spencer", "Hawkins", "Arnold", "Pierce",
    "Vazquez", "Hansen", "Peters", "Santos", "Hart", "Bradley", "Knight", "Elliott",
    "Cunningham", "Duncan", "Armstrong", "Hudson", "Carroll", "Lane", "Riley", "Andrews",
    "Alvarado", "Ray", "Delgado", "Berry", "Perkins", "Hoffman", "Johnston", "Matthews",
    "Pena", "Richards", "Contreras", "Willis", "Carpenter", "Lawrence", "Sandoval",
    "Guerrero", "George", "Chapman", "Rios", "Estrada", "Ortega", "Watkins", "Greene", "Nunez",
    "Wheeler", "Valdez", "Harper", "Burke", "Larson", "Santiago", "Maldonado", "Morrison",
    "Franklin", "Carlson", "Austin", "Dominguez", "Carr", "Lawson", "Jacobs", "O'Brien",
    "Lynch", "Singh", "Vega", "Bishop", "Montgomery", "Oliver", "Jensen", "Harvey",
    "Williamson", "Gilbert", "Dean", "Sims", "Espinoza", "Howell", "Li", "Wong", "Reid",
    "Hanson", "Le", "McCoy", "Garrett", "Burton", "Fuller", "Wang", "Weber", "Welch", "Rojas",
    "Lucas", "Marquez", "Fields", "Park", "Yang", "Little", "Banks", "Padilla", "Day", "Walsh",
    "Bowman", "Schultz", "Luna", "Fowler", "Mejia", "Davidson", "Acosta", "Brewer", "May",
    "Holland", "Juarez", "Newman", "Pearson", "Curtis", "Cortez", "Douglas", "Schneider",
    "Joseph", "Barrett", "Navarro", "Figueroa", "Keller", "Avila", "Wade", "Molina", "Stanley",
    "Hopkins", "Campos", "Barnett", "Bates", "Chambers", "Caldwell", "Beck", "Lambert",
    "Miranda", "Byrd", "Craig", "Ayala", "Lowe", "Frazier", "Powers", "Neal", "Leonard",
    "Gregory", "Carrillo", "Sutton", "Fleming", "Rhodes", "Shelton", "Schwartz", "Norris",
    "Jennings", "Watts", "Duran", "Walters", "Cohen", "McDaniel", "Moran", "Parks", "Steele",
    "Vaughn", "Becker", "Holt", "DeLeon", "Barker", "Terry", "Hale", "Leon",
)  # fmt: skip

STREET_NAMES: Final[tuple[str, ...]] = (
    "Main", "Oak", "Maple", "Cedar", "Pine", "Elm", "Washington", "Lake", "Hill", "Park",
    "Sunset", "Mesquite", "Palm", "Canyon", "Mountain Vista", "Desert Willow", "Juniper",
    "Cottonwood", "Willow", "Magnolia", "Pecan", "Live Oak", "Bluebonnet", "Rolling Hills",
    "Ridgeview", "Meadow", "Spring Valley", "Saguaro", "Ocotillo", "Palo Verde", "Camelback",
    "Cactus", "Indian School", "McDowell", "Thunderbird", "Greenway", "Bell", "Baseline",
    "Southern", "Broadway", "Central", "Lincoln", "Jefferson", "Madison", "Jackson", "Adams",
    "Franklin", "Highland", "Valley View", "Cherry", "Walnut", "Hickory", "Chestnut",
    "Sycamore", "Aspen", "Birch", "Laurel", "Mockingbird", "Cardinal", "Bluejay", "Quail Run",
    "Roadrunner", "Coyote", "Silver Spur", "Red Rock", "Sandstone", "Granite", "Limestone",
    "Stonebridge", "Creekside", "Riverbend", "Lakeview", "Brookhollow", "Fox Run",
    "Deer Creek", "Eagle Crest", "Hawk Ridge", "Falcon", "Sierra Vista", "Vista Del Sol",
    "Rancho", "El Camino", "Paseo Verde", "Desert Inn", "Tropicana", "Flamingo", "Sahara",
    "Charleston", "Windmill", "Warm Springs", "Horizon Ridge", "Green Valley", "Rainbow",
    "Durango", "Buffalo", "Lamar", "Congress", "Guadalupe", "Burnet", "Anderson Mill",
    "Parmer", "Slaughter", "Brodie", "William Cannon", "Preston", "Legacy", "Coit", "Hillcrest",
    "Forest", "Belt Line", "Camp Bowie", "Hulen", "Cooper", "Davis", "Pioneer", "Frontier",
    "Heritage", "Independence", "Liberty", "Prairie", "Timber", "Autumn", "Summit",
    "Crescent", "Harbor", "Whispering Pines", "Shady Oaks", "Briarwood", "Wildflower",
    "Sagebrush", "Tumbleweed", "Amber Hills", "Copper Canyon", "Golden Meadow", "Silverado",
)  # fmt: skip

# (full, abbreviation)
_SUFFIXES: Final[tuple[tuple[str, str], ...]] = (
    ("Street", "St"), ("Avenue", "Ave"), ("Drive", "Dr"), ("Lane", "Ln"), ("Road", "Rd"),
    ("Court", "Ct"), ("Boulevard", "Blvd"), ("Way", "Way"), ("Circle", "Cir"), ("Place", "Pl"),
    ("Parkway", "Pkwy"), ("Trail", "Trl"), ("Terrace", "Ter"), ("Loop", "Loop"), ("Cove", "Cv"),
)  # fmt: skip
_SUFFIX_WEIGHTS: Final = _cum((18, 16, 20, 9, 9, 8, 5, 6, 4, 4, 2, 3, 2, 2, 2))
_DIRECTIONS: Final[tuple[tuple[str, str], ...]] = (
    ("N", "North"),
    ("S", "South"),
    ("E", "East"),
    ("W", "West"),
)

# Only nicknames people really go by; the nickname library also knows "Dobbin" for Robert.
_COMMON_NICKNAMES: Final = frozenset(
    """
    abby al alex andy angie barb becky ben beth betsy betty bill billy bob bobby brad cathy
    charlie chris chuck cindy dan danny dave deb debbie don donnie doug drew ed eddie fran
    frank fred gabe greg hank jack jackie jake jen jenn jenny jeff jerry jess jessie jim jimmy
    joe joey jon josh judy kate katie kathy kathie ken kenny kim larry len lenny liz liza lou
    maggie mandy marge matt meg mel mike mikey mitch nate nick nicky pam pat patty peggy pete
    phil ray rich richie rick ricky rob robby ron ronnie russ sam sammy sandy steve stevie sue
    susie ted teddy terry tim timmy tom tommy tony val vicky vince walt wes will willy zach
    """.split()
)

_EMAIL_DOMAINS: Final = (
    "gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com", "aol.com",
    "comcast.net", "att.net", "sbcglobal.net", "cox.net", "msn.com", "live.com", "me.com",
    "charter.net", "verizon.net",
)  # fmt: skip
_EMAIL_WEIGHTS: Final = _cum((44, 14, 7, 7, 8, 3, 3, 3, 2, 3, 1, 1, 1, 1, 1))
_DISPOSABLE_DOMAINS: Final = (
    "mailinator.com",
    "guerrillamail.com",
    "10minutemail.com",
    "yopmail.com",
    "sharklasers.com",
    "trashmail.com",
)

_USER_AGENTS: Final = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; SM-S918U) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (iPad; CPU OS 16_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/16.6 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/123.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/458.0.0.36.108]",
)
_BOT_USER_AGENTS: Final = (
    "python-requests/2.31.0",
    "curl/8.4.0",
    "Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/120.0.6099.71 Safari/537.36",
)

_CONSENT_TEXT: Final = (
    "By submitting this form, I agree that AIQLeads and its partner real estate professionals "
    "may contact me at the phone number and e-mail provided, including by autodialed calls, "
    "prerecorded messages and texts. Consent is not a condition of any purchase. "
    "Msg & data rates may apply."
)

# First octets of big US residential ISP ranges (cable / telco); fraud rings use hosting ranges.
_HOME_OCTETS: Final = (24, 47, 67, 68, 70, 71, 72, 73, 74, 75, 76, 97, 98, 99, 107, 108, 173, 174)
_HOSTING_OCTETS: Final = (45, 103, 185, 193, 194)

_KINDS: Final = ("seller", "buyer", "fsbo", "expired_listing", "solar_homeowner")
_KIND_WEIGHTS: Final = _cum((55, 15, 12, 10, 8))
# Which sources a lead of each kind tends to come from: weights over DEMO_SOURCES.
_SOURCE_WEIGHTS: Final[dict[str, tuple[float, ...]]] = {
    "seller": (35, 30, 20, 15),
    "buyer": (5, 50, 40, 5),
    "fsbo": (5, 20, 15, 60),
    "expired_listing": (60, 10, 5, 25),
    "solar_homeowner": (5, 45, 45, 5),
}
_SOURCE_CUM: Final = {kind: _cum(w) for kind, w in _SOURCE_WEIGHTS.items()}
_FRAUD_SOURCE_WEIGHTS: Final = _cum((5, 45, 35, 15))

_SFR, _CONDO, _TOWNHOUSE, _MULTI = range(4)
_PTYPE_WEIGHTS: Final = _cum((70, 15, 12, 3))
_PTYPE_PRICE: Final = (1.1, 0.62, 0.82, 1.25)
# How each source labels the property types, indexed like _SFR.._MULTI.
_PTYPE_LABELS: Final[dict[str, tuple[str, ...]]] = {
    _MLS: ("Single Family Residence", "Condominium", "Townhouse", "Multi Family"),
    _WEBFORM: ("Single Family", "Condo", "Townhome", "Multi-Family"),
    _FACEBOOK: ("House", "Condo", "Townhouse", "Duplex"),
    _LISTINGS: ("Single-Family Home", "Condo", "Townhouse", "Multi-Family"),
}

# Exchanges never handed to subscribers (N11 service codes, 555, special 9xx).
_BAD_EXCHANGES: Final = frozenset({211, 311, 411, 511, 611, 711, 811, 911, 555, 950, 958, 959, 976})


@dataclass(frozen=True, slots=True)
class _Profile:
    """How a market's homes and phone numbers look."""

    area_codes: tuple[str, ...]
    median_price: float
    price_per_sqft: float
    year_mode: int
    lot_median: float
    parcel: str  # "d" = a digit, anything else literal
    weight: float


_PROFILES: Final[dict[str, _Profile]] = {
    "las-vegas": _Profile(("702", "725"), 420_000, 235, 2003, 5_500, "ddd-dd-ddd-ddd", 0.20),
    "dallas-fort-worth": _Profile(
        ("214", "469", "972", "817", "682"), 390_000, 195, 1996, 7_800, "00000dddddd000000", 0.35
    ),
    "austin": _Profile(("512", "737"), 550_000, 320, 2001, 7_000, "0ddddddddd", 0.17),
    "phoenix": _Profile(("602", "480", "623"), 450_000, 275, 1995, 7_200, "ddd-dd-ddd", 0.28),
}


@dataclass(frozen=True, slots=True)
class _Zip:
    code: str
    city: str
    state: str
    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class _MarketData:
    slug: str
    bbox: tuple[float, float, float, float]
    zips: tuple[_Zip, ...]
    profile: _Profile


# zipcodes' Python wrappers are unannotated; its stub-typed signature is list[dict[str, Any]].
_zip_filter: Callable[..., list[dict[str, Any]]] = zipcodes.filter_by


@functools.cache
def _market_zips(
    states: tuple[str, ...], bbox: tuple[float, float, float, float]
) -> tuple[_Zip, ...]:
    min_lon, min_lat, max_lon, max_lat = bbox
    found: list[_Zip] = []
    for state in states:
        for row in _zip_filter(state=state, zip_code_type="STANDARD", active=True):
            lat, lon = float(row["lat"]), float(row["long"])
            if min_lat <= lat <= max_lat and min_lon <= lon <= max_lon:
                found.append(_Zip(row["zip_code"], row["city"], row["state"], lat, lon))
    found.sort(key=lambda z: z.code)
    return tuple(found)


@functools.cache
def _zip_area_codes(states: tuple[str, ...], bbox: tuple[float, float, float, float]) -> list[str]:
    """Area codes of a market's ZIPs (for markets without an embedded profile)."""
    min_lon, min_lat, max_lon, max_lat = bbox
    codes: set[str] = set()
    for state in states:
        for row in _zip_filter(state=state, zip_code_type="STANDARD", active=True):
            lat, lon = float(row["lat"]), float(row["long"])
            if min_lat <= lat <= max_lat and min_lon <= lon <= max_lon:
                codes.update(row["area_codes"] or ())
    return sorted(c for c in codes if _exchange_ok(c, 234))


def _market_data(market: Market) -> _MarketData:
    bbox = (
        float(market.bbox[0]),
        float(market.bbox[1]),
        float(market.bbox[2]),
        float(market.bbox[3]),
    )
    zips = _market_zips(tuple(market.states), bbox)
    if not zips:
        raise ValueError(f"market {market.slug!r} has no ZIP codes inside its bbox")
    profile = _PROFILES.get(market.slug)
    if profile is None:
        area_codes = tuple(_zip_area_codes(tuple(market.states), bbox))
        if not area_codes:
            raise ValueError(f"market {market.slug!r}: no usable area codes")
        profile = _Profile(area_codes, 400_000, 220, 1995, 7_000, "ddd-dd-ddd", 0.2)
    return _MarketData(market.slug, bbox, zips, profile)


@functools.cache
def _exchange_ok(area_code: str, exchange: int) -> bool:
    """Whether `phonenumbers` accepts numbers in this area code + exchange.

    US validity is decided by the area code and exchange only (the line digits never change
    it), so one check per exchange covers all 10,000 lines.
    """
    if exchange in _BAD_EXCHANGES or exchange < 200:
        return False
    number = phonenumbers.PhoneNumber(
        country_code=1, national_number=int(f"{area_code}{exchange:03d}4271")
    )
    return bool(phonenumbers.is_valid_number(number))


@functools.cache
def _area_exchanges(area_code: str) -> tuple[int, ...]:
    """A fixed pool of valid exchanges for an area code (2M+ numbers; checking all 800
    exchanges of every area code would cost more than generating 100k records)."""
    candidates = list(range(200, 1000))
    random.Random(int(area_code)).shuffle(candidates)
    pool = [e for e in candidates[:320] if _exchange_ok(area_code, e)]
    if not pool:
        raise ValueError(f"area code {area_code} has no valid exchanges")
    return tuple(sorted(pool))


@functools.cache
def _nicknamer() -> NickNamer:
    return NickNamer()


@functools.cache
def _nicknames(first: str) -> tuple[str, ...]:
    names = _nicknamer().nicknames_of(first.lower()) & _COMMON_NICKNAMES
    return tuple(n.capitalize() for n in sorted(names))


# --------------------------------------------------------------------------------------------
# Entities
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Property:
    market: _MarketData
    zip: _Zip
    number: int
    direction: int  # index into _DIRECTIONS, -1 for none
    street: str
    suffix: int  # index into _SUFFIXES
    unit: str | None
    lat: float
    lon: float
    ptype: int
    beds: int
    baths: float
    sqft: int
    lot: int | None
    year: int
    price: int
    parcel: str


@dataclass(slots=True)
class _Entity:
    entity_id: str
    household_id: str
    kind: str
    first: str
    last: str
    phone: str  # ten digits
    email: str
    prop: _Property
    ip: str
    user_agent: str
    days_on_market: int | None
    status: str | None


# Corruptions applied to one copy of an entity (bit flags).
_TYPO = 1 << 0
_NICKNAME = 1 << 1
_SWAP = 1 << 2
_NAME_CASE = 1 << 3
_PHONE_FORMAT = 1 << 4
_EMAIL_CASE = 1 << 5
_NO_EMAIL = 1 << 6
_NO_PHONE = 1 << 7
_NO_UNIT = 1 << 8
_NO_FACTS = 1 << 9
_NO_GEO = 1 << 10
_PRICE_JITTER = 1 << 11
_NO_PRICE = 1 << 12
_NO_PARCEL = 1 << 13
_STREET_STYLE = 1 << 14
_CORRUPTIONS: Final = (
    _TYPO,
    _NICKNAME,
    _SWAP,
    _NAME_CASE,
    _PHONE_FORMAT,
    _EMAIL_CASE,
    _NO_EMAIL,
    _NO_PHONE,
    _NO_UNIT,
    _NO_FACTS,
    _NO_GEO,
    _PRICE_JITTER,
    _NO_PRICE,
    _NO_PARCEL,
    _STREET_STYLE,
)
_CORRUPTION_WEIGHTS: Final = _cum((14, 12, 5, 8, 10, 7, 6, 7, 5, 8, 8, 8, 5, 4, 10))

# Phone styles: how a source writes 7025550143.
_PHONE_STYLES: Final[tuple[Callable[[str], str], ...]] = (
    lambda d: f"({d[:3]}) {d[3:6]}-{d[6:]}",
    lambda d: f"{d[:3]}.{d[3:6]}.{d[6:]}",
    lambda d: f"+1 {d[:3]} {d[3:6]} {d[6:]}",
    lambda d: d,
    lambda d: f"{d[:3]}-{d[3:6]}-{d[6:]}",
    lambda d: f"1-{d[:3]}-{d[3:6]}-{d[6:]}",
    lambda d: f"+1{d}",
    lambda d: f"({d[:3]}){d[3:6]}-{d[6:]}",
    lambda d: f"+1 ({d[:3]}) {d[3:6]}-{d[6:]}",
)
_SOURCE_PHONE_WEIGHTS: Final[dict[str, tuple[float, ...]]] = {
    _MLS: _cum((60, 0, 0, 10, 30, 0, 0, 0, 0)),
    _WEBFORM: _cum((25, 10, 0, 35, 20, 5, 0, 5, 0)),
    _FACEBOOK: _cum((0, 0, 15, 15, 0, 0, 70, 0, 0)),
    _LISTINGS: _cum((30, 20, 10, 0, 40, 0, 0, 0, 0)),
}
_GEO_RATE: Final = {_MLS: 0.95, _WEBFORM: 0.5, _FACEBOOK: 0.1, _LISTINGS: 0.8}
_DESCRIPTION_RATE: Final = {_MLS: 0.6, _WEBFORM: 0.3, _FACEBOOK: 0.2, _LISTINGS: 0.9}

_TEST_NAMES: Final = (
    ("Test", "Test"),
    ("test", "test"),
    ("asdf", "qwer"),
    ("Asdf", "Asdf"),
    ("John", "Doe"),
    ("Jane", "Doe"),
    ("xxx", "xxx"),
    ("aaa", "bbb"),
    ("Test", "User"),
    ("qwerty", "asdf"),
    ("Fake", "Name"),
    ("Mickey", "Mouse"),
)


class _Generator:
    """Draws entities and renders their records; all randomness from one `random.Random`."""

    def __init__(
        self,
        *,
        seed: int,
        markets: Sequence[_MarketData],
        duplicate_rate: float,
        fraud_rate: float,
        household_rate: float,
        now: datetime,
    ) -> None:
        self.rng = _Rand(seed)
        self.seed = seed
        self.markets = list(markets)
        self.market_cum = _cum([m.profile.weight for m in self.markets])
        self.duplicate_rate = duplicate_rate
        self.household_rate = household_rate
        self.now = now
        self.used_phones: set[str] = set()
        self.used_emails: set[str] = set()
        self.entity_seq = 0
        self.household_seq = 0
        self.key_seq = dict.fromkeys(DEMO_SOURCES, 0)
        rng = self.rng
        self.ring_ips = tuple(
            f"{rng.choice(_HOSTING_OCTETS)}.{rng.randint(1, 254)}.{rng.randint(0, 255)}."
            f"{rng.randint(1, 254)}"
            for _ in range(6)
        )
        # fraud_rate is a share of records; genuine draws yield more than one record on average.
        mean_genuine = (1 + 2 * duplicate_rate) * (1 + household_rate)
        denom = 1 - fraud_rate + fraud_rate * mean_genuine
        self.fraud_draw = fraud_rate * mean_genuine / denom if denom > 0 else 1.0

    # --- draws ---------------------------------------------------------------------------

    def groups(self) -> Iterator[list[SyntheticRecord]]:
        """Endless groups of records: one fraud record, or a household's records."""
        rng = self.rng
        while True:
            if rng.random() < self.fraud_draw:
                yield [self._fraud_record()]
            else:
                yield self._household_records()

    def _household_records(self) -> list[SyntheticRecord]:
        rng = self.rng
        self.household_seq += 1
        household_id = f"H{self.household_seq:07d}"
        market = rng.weighted(self.markets, self.market_cum)
        kind = rng.weighted(_KINDS, _KIND_WEIGHTS)
        prop = self._property(market)
        first, last = rng.choice(FIRST_NAMES), rng.choice(SURNAMES)
        main = self._entity(household_id, kind, first, last, prop, ip=None)
        records = self._copies(main)
        if rng.random() < self.household_rate:
            other_first = rng.choice(FIRST_NAMES)
            while other_first == first:
                other_first = rng.choice(FIRST_NAMES)
            other_last = last if rng.random() < 0.85 else rng.choice(SURNAMES)
            # Same home network half the time: an IP alone must not merge two people.
            ip = main.ip if rng.random() < 0.5 else None
            partner = self._entity(household_id, kind, other_first, other_last, prop, ip=ip)
            records.extend(self._copies(partner))
        return records

    def _entity(
        self, household_id: str, kind: str, first: str, last: str, prop: _Property, ip: str | None
    ) -> _Entity:
        rng = self.rng
        self.entity_seq += 1
        if kind in ("fsbo", "seller"):
            status = "Active" if kind == "fsbo" else rng.choice(("Active", "Coming Soon", None))
            dom = rng.randint(1, 120) if kind == "fsbo" or status == "Active" else None
        elif kind == "expired_listing":
            status = rng.weighted(("Expired", "Withdrawn", "Canceled"), (70, 90, 100))
            dom = rng.randint(90, 270)
        else:
            status, dom = None, None
        return _Entity(
            entity_id=f"E{self.entity_seq:07d}",
            household_id=household_id,
            kind=kind,
            first=first,
            last=last,
            phone=self._phone(prop.market),
            email=self._email(first, last),
            prop=prop,
            ip=ip or self._home_ip(),
            user_agent=rng.choice(_USER_AGENTS),
            days_on_market=dom,
            status=status,
        )

    def _phone(self, market: _MarketData) -> str:
        rng = self.rng
        codes = market.profile.area_codes
        while True:
            area = rng.choice(codes)
            exchange = rng.choice(_area_exchanges(area))
            digits = f"{area}{exchange:03d}{rng.randint(0, 9999):04d}"
            if digits not in self.used_phones:
                self.used_phones.add(digits)
                return digits

    def _email(self, first: str, last: str) -> str:
        rng = self.rng
        f = "".join(c for c in first.lower() if c.isalpha())
        la = "".join(c for c in last.lower() if c.isalpha())
        pattern = rng.randrange(9)
        if pattern == 0:
            local = f"{f}.{la}"
        elif pattern == 1:
            local = f"{f}{la}"
        elif pattern == 2:
            local = f"{f[0]}{la}"
        elif pattern == 3:
            local = f"{f}_{la}"
        elif pattern == 4:
            local = f"{f}{la}{rng.randint(1, 99)}"
        elif pattern == 5:
            local = f"{f}.{la}{rng.randint(60, 99)}"
        elif pattern == 6:
            local = f"{la}.{f}"
        elif pattern == 7:
            local = f"{f}{rng.randint(1, 9999)}"
        else:
            local = f"{f[0]}{la}{rng.randint(1, 999)}"
        domain = rng.weighted(_EMAIL_DOMAINS, _EMAIL_WEIGHTS)
        email = f"{local}@{domain}"
        while email in self.used_emails:
            email = f"{local}{rng.randint(1, 9999)}@{domain}"
        self.used_emails.add(email)
        return email

    def _home_ip(self) -> str:
        rng = self.rng
        bits = rng.getrandbits(24)
        last = 1 + (bits & 0xFF) % 254
        return f"{rng.choice(_HOME_OCTETS)}.{bits >> 16}.{(bits >> 8) & 0xFF}.{last}"

    def _property(self, market: _MarketData) -> _Property:
        rng = self.rng
        profile = market.profile
        z = rng.choice(market.zips)
        # Up to ~2 km from the ZIP centroid, kept inside the market.
        dist, angle = 2.0 * math.sqrt(rng.random()), rng.random() * 2 * math.pi
        lat = z.lat + dist * math.cos(angle) / 111.0
        lon = z.lon + dist * math.sin(angle) / (111.0 * math.cos(math.radians(z.lat)))
        min_lon, min_lat, max_lon, max_lat = market.bbox
        lat = min(max(lat, min_lat), max_lat)
        lon = min(max(lon, min_lon), max_lon)

        ptype = rng.weighted(range(4), _PTYPE_WEIGHTS)
        price = profile.median_price * _PTYPE_PRICE[ptype] * math.exp(rng.gauss(0, 0.42))
        price = min(max(price, 60_000), 12_000_000)
        price_int = int(price / 1000 + 0.5) * 1000
        if rng.random() < 0.3:
            price_int -= 100  # 449,900
        sqft = price / (profile.price_per_sqft * math.exp(rng.gauss(0, 0.18)))
        sqft_int = int(min(max(sqft, 450 if ptype == _CONDO else 750), 9_500) // 10 * 10)
        if ptype == _CONDO:
            beds = 1 if sqft_int < 800 else 2 if sqft_int < 1300 else 3
        else:
            beds = 2 if sqft_int < 1100 else 3 if sqft_int < 1700 else 4 if sqft_int < 2700 else 5
            beds += 1 if sqft_int > 3800 else 0
            if rng.random() < 0.2:
                beds = max(1, beds + rng.choice((-1, 1)))
        # Baths follow size more than bedrooms: 1 per ~900 sq ft, in halves, at most beds + 1/2.
        baths = int((sqft_int / 900 + rng.uniform(0.5, 1.5)) * 2) / 2
        baths = min(max(1.0, baths), beds + 0.5)
        if ptype == _CONDO:
            lot: int | None = None
        elif ptype == _TOWNHOUSE:
            lot = rng.randint(15, 35) * 100
        else:
            lot = int(profile.lot_median * math.exp(rng.gauss(0, 0.35)) // 10 * 10)
            if ptype == _MULTI:
                lot = int(lot * 1.2)
        year = int(rng.triangular(1950, 2024, profile.year_mode))

        unit: str | None = None
        if (
            ptype == _CONDO
            or (ptype == _TOWNHOUSE and rng.random() < 0.3)
            or (ptype == _MULTI and rng.random() < 0.5)
        ):
            style = rng.randrange(3)
            if style == 0:
                unit = f"{rng.randint(1, 12)}{rng.randint(1, 30):02d}"
            elif style == 1:
                unit = f"{rng.randint(1, 24)}{rng.choice('ABCDEF')}"
            else:
                unit = str(rng.randint(1, 399))
        number = rng.randint(100, 9999) if rng.random() < 0.85 else rng.randint(10000, 24999)
        return _Property(
            market=market,
            zip=z,
            number=number,
            direction=rng.randrange(4) if rng.random() < 0.3 else -1,
            street=rng.choice(STREET_NAMES),
            suffix=rng.weighted(range(len(_SUFFIXES)), _SUFFIX_WEIGHTS),
            unit=unit,
            lat=lat,
            lon=lon,
            ptype=ptype,
            beds=beds,
            baths=baths,
            sqft=sqft_int,
            lot=lot,
            year=year,
            price=int(price_int),
            parcel=_parcel(rng, profile.parcel),
        )

    # --- records -------------------------------------------------------------------------

    def _copies(self, entity: _Entity) -> list[SyntheticRecord]:
        rng = self.rng
        if rng.random() < self.duplicate_rate:
            n = rng.randint(2, 4)
            sources = _weighted_sample(rng, DEMO_SOURCES, _SOURCE_WEIGHTS[entity.kind], n)
            weights: tuple[float, ...] = (15, 55, 85, 100)
        else:
            sources = [rng.weighted(DEMO_SOURCES, _SOURCE_CUM[entity.kind])]
            weights = (75, 100, 100, 100)
        out = []
        for source in sources:
            k = rng.weighted((0, 1, 2, 3), weights)
            flags = 0
            for _ in range(k):
                flags |= rng.weighted(_CORRUPTIONS, _CORRUPTION_WEIGHTS)
            if flags & _NO_EMAIL and flags & _NO_PHONE:
                flags &= ~(_NO_EMAIL if rng.random() < 0.5 else _NO_PHONE)
            ip = entity.ip if rng.random() < 0.6 else self._home_ip()
            payload = self._render(entity, source, flags, ip)
            out.append(self._record(source, payload, entity.entity_id, entity.household_id, False))
        return out

    def _record(
        self,
        source: str,
        payload: dict[str, Any],
        entity_id: str,
        household_id: str,
        is_fraud: bool,
    ) -> SyntheticRecord:
        self.key_seq[source] += 1
        key = f"{_KEY_PREFIX[source]}-{self.seed}-{self.key_seq[source]:07d}"
        updated = self.now - timedelta(seconds=self.rng.randint(0, 45 * 86_400))
        consent = payload.get("consent")
        if isinstance(consent, dict) and "captured_at" in consent and not consent["captured_at"]:
            captured = updated - timedelta(seconds=self.rng.randint(1, 600))
            consent["captured_at"] = captured.isoformat()
        return SyntheticRecord(
            source=source,
            record=RawRecord(source_key=key, payload=payload, source_updated_at=updated),
            entity_id=entity_id,
            household_id=household_id,
            is_fraud=is_fraud,
        )

    def _render(self, e: _Entity, source: str, flags: int, ip: str) -> dict[str, Any]:
        """The payload `source` would send for entity `e`, with the given corruptions."""
        rng = self.rng
        p = e.prop
        out: dict[str, Any] = {"kind": e.kind}

        # Name
        first, last = e.first, e.last
        if flags & _NICKNAME:
            nicks = _nicknames(first)
            if nicks:
                first = rng.choice(nicks)
        if flags & _TYPO:
            if rng.random() < 0.5:
                first = _typo(rng, first)
            else:
                last = _typo(rng, last)
        if flags & _SWAP:
            first, last = last, first
        if flags & _NAME_CASE:
            style = rng.randrange(4)
            if style == 0:
                first, last = first.upper(), last.upper()
            elif style == 1:
                first, last = first.lower(), last.lower()
            elif style == 2:
                first, last = f" {first}", f"{last}  "
            else:
                first = first.lower()
        if source == _FACEBOOK or (source == _LISTINGS and rng.random() < 0.6):
            if flags & _NAME_CASE and rng.random() < 0.5:
                out["full_name"] = f"{first}  {last}"
            else:
                out["full_name"] = f"{first} {last}"
        else:
            out["first_name"] = first
            out["last_name"] = last

        # Contact
        if not flags & _NO_PHONE:
            if flags & _PHONE_FORMAT:
                style_fn = rng.choice(_PHONE_STYLES)
            else:
                style_fn = rng.weighted(_PHONE_STYLES, _SOURCE_PHONE_WEIGHTS[source])
            out["phone"] = style_fn(e.phone)
        if not flags & _NO_EMAIL:
            email = e.email
            if flags & _EMAIL_CASE:
                local, domain = email.split("@")
                style = rng.randrange(3)
                if style == 0:
                    email = email.upper()
                elif style == 1:
                    email = f"{local.capitalize()}@{domain.capitalize()}"
                else:
                    email = f" {local}@{domain.capitalize()} "
            out["email"] = email

        # Address
        full_words = flags & _STREET_STYLE or rng.random() < 0.15
        parts = [str(p.number)]
        if p.direction >= 0:
            abbr, word = _DIRECTIONS[p.direction]
            parts.append(word if full_words and rng.random() < 0.7 else abbr)
        parts.append(p.street)
        s_full, s_abbr = _SUFFIXES[p.suffix]
        if full_words:
            parts.append(s_full)
        else:
            parts.append(s_abbr + "." if rng.random() < 0.1 else s_abbr)
        street = " ".join(parts)
        unit_text: str | None = None
        if p.unit is not None and not flags & _NO_UNIT:
            unit_text = rng.choice(_UNIT_STYLES)(p.unit)
        upper = source == _MLS and rng.random() < 0.3
        if unit_text is not None and (source != _MLS or rng.random() < 0.3):
            sep = ", " if rng.random() < 0.3 else " "
            street = f"{street}{sep}{unit_text}"
            unit_text = None
        out["street"] = street.upper() if upper else street
        if unit_text is not None:
            out["unit"] = unit_text
        out["city"] = p.zip.city.upper() if upper else p.zip.city
        state = p.zip.state
        if source in _CONSENT_SOURCES and rng.random() < 0.1:
            state = _STATE_NAMES.get(state, state)
        out["state"] = state
        postal = p.zip.code
        if source == _MLS and rng.random() < 0.15:
            postal = f"{postal}-{rng.randint(1, 9999):04d}"
        out["postal_code"] = postal
        if not flags & _NO_GEO and rng.random() < _GEO_RATE[source]:
            if source == _LISTINGS:
                out["latitude"], out["longitude"] = f"{p.lat:.5f}", f"{p.lon:.5f}"
            else:
                out["latitude"], out["longitude"] = round(p.lat, 6), round(p.lon, 6)

        # Property facts
        has_facts = source in (_MLS, _LISTINGS) or rng.random() < 0.5
        drop = rng.randint(1, 7) if flags & _NO_FACTS else 0  # bitmask of beds/baths/sqft
        if has_facts or rng.random() < 0.3:
            out["property_type"] = _PTYPE_LABELS[source][p.ptype]
        if has_facts:
            if not drop & 1:
                out["beds"] = p.beds if source == _MLS or rng.random() < 0.5 else str(p.beds)
            if not drop & 2:
                baths = p.baths
                out["baths"] = baths if source == _MLS else f"{baths:g}"
            if not drop & 4 and (source != _FACEBOOK):
                out["living_area_sqft"] = p.sqft if source == _MLS else f"{p.sqft:,}"
            if p.lot is not None and source in (_MLS, _LISTINGS) and rng.random() < 0.8:
                out["lot_size_sqft"] = p.lot if source == _MLS else f"{p.lot:,}"
            if source in (_MLS, _LISTINGS) or rng.random() < 0.3:
                out["year_built"] = p.year if source == _MLS else str(p.year)
        price = p.price
        if flags & _PRICE_JITTER:
            price = int(round(price * (1 + rng.uniform(-0.04, 0.04)), -3))
        if e.kind in ("seller", "fsbo", "expired_listing") and not flags & _NO_PRICE:
            if source != _FACEBOOK or rng.random() < 0.4:
                out["list_price"] = _format_price(rng, price, source)
        if e.days_on_market is not None and source in (_MLS, _LISTINGS):
            out["days_on_market"] = e.days_on_market
        if source in (_MLS, _LISTINGS) and not flags & _NO_PARCEL and rng.random() < 0.85:
            parcel = p.parcel
            if rng.random() < 0.2:
                parcel = parcel.replace("-", "")
            out["parcel_number"] = parcel
        if e.status is not None and source in (_MLS, _LISTINGS):
            out["listing_status"] = e.status
        if rng.random() < _DESCRIPTION_RATE[source]:
            out["description"] = _description(rng, e, price)
        out["market"] = p.market.slug

        # Consent and the submitter's IP (forms only)
        if source in _CONSENT_SOURCES:
            out["consent"] = self._consent(source, e, ip)
            out["submitted_ip"] = ip
        return out

    def _consent(self, source: str, e: _Entity, ip: str) -> dict[str, Any]:
        rng = self.rng
        if source == _FACEBOOK:
            url = f"https://www.facebook.com/leadgen/form/{rng.randint(10**14, 10**15 - 1)}"
        else:
            page = rng.choice(("home-value", "sell-fast", "cash-offer", "buy", "solar-savings"))
            url = f"https://homes.aiqleads-demo.com/{e.prop.market.slug}/{page}"
        cert = (
            f"https://cert.trustedform.com/{rng.getrandbits(160):040x}"
            if rng.random() < 0.7
            else None
        )
        return {
            "captured_at": None,  # filled from the record's timestamp
            "text": _CONSENT_TEXT,
            "url": url,
            "ip": ip,
            "user_agent": e.user_agent,
            "certificate_url": cert,
        }

    # --- fraud ---------------------------------------------------------------------------

    def _fraud_record(self) -> SyntheticRecord:
        rng = self.rng
        self.household_seq += 1
        household_id = f"H{self.household_seq:07d}"
        market = rng.weighted(self.markets, self.market_cum)
        source = rng.weighted(DEMO_SOURCES, _FRAUD_SOURCE_WEIGHTS)
        kind = rng.weighted(_KINDS, _KIND_WEIGHTS)
        first, last = rng.choice(FIRST_NAMES), rng.choice(SURNAMES)
        prop = self._property(market)
        entity = self._entity(household_id, kind, first, last, prop, ip=None)
        payload = self._render(entity, source, 0, entity.ip)

        signals = ["test_name", "disposable_email", "toll_free", "absurd_price", "far_coords"]
        weights = [20, 25, 20, 12, 10]
        if source in _CONSENT_SOURCES:
            signals += ["ring_ip", "no_consent"]
            weights += [30, 15]
        chosen: set[str] = set()
        want = rng.weighted((1, 2, 3), (45, 80, 100))
        while len(chosen) < want:
            chosen.add(rng.weighted(signals, _cum(weights)))

        name_fields = ("full_name",) if "full_name" in payload else ("first_name", "last_name")
        if "test_name" in chosen:
            if rng.random() < 0.75:
                f, la = rng.choice(_TEST_NAMES)
            else:
                f, la = _gibberish(rng), _gibberish(rng)
            if name_fields == ("full_name",):
                payload["full_name"] = f"{f} {la}"
            else:
                payload["first_name"], payload["last_name"] = f, la
        if "disposable_email" in chosen:
            local = _gibberish(rng) if rng.random() < 0.5 else entity.email.split("@")[0]
            payload["email"] = f"{local}@{rng.choice(_DISPOSABLE_DOMAINS)}"
        if "toll_free" in chosen:
            digits = f"{rng.choice(('800', '888', '877'))}{rng.randint(200, 999)}"
            digits += f"{rng.randint(0, 9999):04d}"
            payload["phone"] = rng.choice(_PHONE_STYLES)(digits)
        if "absurd_price" in chosen:
            payload["list_price"] = rng.choice((1, "$1", 0, "90000000", "$90M", 99_999_999))
        if "far_coords" in chosen:
            style = rng.randrange(3)
            if style == 0:
                lat, lon = 0.0, 0.0
            elif style == 1:
                lat, lon = round(rng.uniform(40, 47), 6), round(rng.uniform(-95, -72), 6)
            else:  # latitude and longitude swapped
                lat, lon = round(prop.lon, 6), round(prop.lat, 6)
            payload["latitude"], payload["longitude"] = lat, lon
        if "ring_ip" in chosen:
            ring_ip = rng.choice(self.ring_ips)
            payload["submitted_ip"] = ring_ip
            consent = payload.get("consent")
            if isinstance(consent, dict):
                consent["ip"] = ring_ip
                consent["user_agent"] = rng.choice(_BOT_USER_AGENTS + _USER_AGENTS[:2])
        if "no_consent" in chosen:
            if rng.random() < 0.6:
                del payload["consent"]
            else:
                payload["consent"] = {"text": None, "url": None, "ip": None}
        return self._record(source, payload, entity.entity_id, household_id, True)


_UNIT_STYLES: Final[tuple[Callable[[str], str], ...]] = (
    lambda u: f"Apt {u}",
    lambda u: f"Apt. {u}",
    lambda u: f"#{u}",
    lambda u: f"# {u}",
    lambda u: f"Unit {u}",
    lambda u: f"APT {u}",
    lambda u: f"Unit #{u}",
)


@functools.cache
def _parcel_template(pattern: str) -> tuple[str, int]:
    """("ddd-dd-ddd" ->) a %-template with one %s per digit, and the number of digits."""
    return pattern.replace("%", "%%").replace("d", "%s"), pattern.count("d")


def _parcel(rng: _Rand, pattern: str) -> str:
    template, n = _parcel_template(pattern)
    digits = ""
    while len(digits) < n:  # 12 digits per draw: well inside a double's 53 bits
        digits += f"{int(rng.random() * 10**12):012d}"
    return template % tuple(digits[:n])


_STATE_NAMES: Final = {"NV": "Nevada", "TX": "Texas", "AZ": "Arizona"}


def _weighted_sample(
    rng: _Rand, items: Sequence[str], weights: Sequence[float], n: int
) -> list[str]:
    """`n` distinct items, drawn by weight without replacement."""
    pool = list(zip(items, weights, strict=True))
    out: list[str] = []
    for _ in range(min(n, len(pool))):
        x = rng.random() * sum(w for _, w in pool)
        i = 0
        while i < len(pool) - 1 and x >= pool[i][1]:
            x -= pool[i][1]
            i += 1
        out.append(pool.pop(i)[0])
    return out


_LETTERS: Final = "abcdefghijklmnopqrstuvwxyz"


def _typo(rng: _Rand, word: str) -> str:
    """One edit (substitution, deletion, insertion or transposition), first letter kept."""
    if len(word) < 3:
        return word
    i = rng.randint(1, len(word) - 1)
    op = rng.randrange(4)
    letter = rng.choice(_LETTERS)
    if word[i].isupper():
        letter = letter.upper()
    if op == 0:
        return word[:i] + letter + word[i + 1 :] if word[i].lower() != letter.lower() else word
    if op == 1:
        return word[:i] + word[i + 1 :]
    if op == 2:
        return word[:i] + letter + word[i:]
    if i == len(word) - 1 or word[i] == word[i + 1]:
        return word[:i] + word[i + 1 :]
    return word[:i] + word[i + 1] + word[i] + word[i + 2 :]


def _gibberish(rng: _Rand) -> str:
    rows = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
    row = rng.choice(rows)
    start = rng.randrange(len(row) - 3)
    return row[start : start + rng.randint(3, min(6, len(row) - start))]


def _format_price(rng: _Rand, price: int, source: str) -> str | int:
    if source == _MLS:
        return price
    style = rng.randrange(5)
    if style == 0:
        return price
    if style == 1:
        return f"{price:,}"
    if style == 2:
        return f"${price:,}"
    if style == 3:
        return str(price)
    if price >= 1_000_000:
        return f"${price / 1_000_000:.1f}M"
    return f"${round(price / 1000)}K"


def _description(rng: _Rand, e: _Entity, price: int) -> str:
    p = e.prop
    ptype = _PTYPE_LABELS[_LISTINGS][p.ptype].lower()
    city = p.zip.city
    if e.kind == "buyer":
        budget = round(price * rng.uniform(0.9, 1.2), -4)
        return f"Pre-approved buyer looking in {city}, budget up to ${budget:,.0f}."
    if e.kind == "fsbo":
        feature = rng.choice(
            ("pool", "new roof", "updated kitchen", "3-car garage", "no HOA", "corner lot")
        )
        return (
            f"FOR SALE BY OWNER - {p.beds}BR/{p.baths:g}BA {ptype}, {p.sqft:,} sq ft, "
            f"{feature}. Call or text, no agents please."
        )
    if e.kind == "expired_listing":
        return f"Listing expired after {e.days_on_market or 120} days on market. Owner may relist."
    if e.kind == "solar_homeowner":
        kw = rng.choice((4.8, 6.2, 7.5, 8.4, 9.6, 11.2))
        installed = rng.randint(max(p.year, 2012), 2024)
        return f"Homeowner with a {kw} kW solar system installed {installed}; wants a valuation."
    timeline = rng.choice(("in the next 3 months", "this year", "soon", "after the holidays"))
    return (
        f"{p.beds} bed / {p.baths:g} bath {ptype} in {city}. Owner thinking of selling {timeline}."
    )


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def iter_generate(
    count: int,
    *,
    seed: int = 7,
    markets: Sequence[str] | None = None,
    duplicate_rate: float = 0.25,
    fraud_rate: float = 0.04,
    household_rate: float = 0.05,
    now: datetime,
) -> Iterator[SyntheticRecord]:
    """Stream `count` synthetic records (use for a million and more).

    Records pass through a fixed-size shuffle window, so only the sets that keep phones and
    e-mails unique grow with `count` (about 130 MB of process memory at 300k records).

    * `duplicate_rate`: share of genuine entities that appear 2-4 times, each copy from a
      different source and corrupted independently;
    * `fraud_rate`: approximate share of records that are fraud (each its own entity);
    * `household_rate`: share of households with a second, different person at the address.
    """
    if count < 0:
        raise ValueError("count must be >= 0")
    for name, rate in (
        ("duplicate_rate", duplicate_rate),
        ("fraud_rate", fraud_rate),
        ("household_rate", household_rate),
    ):
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"{name} must be within [0, 1]")
    catalog = load_markets()
    if markets is None:
        chosen = catalog.all()
    else:
        chosen = []
        for slug in markets:
            market = catalog.get(slug)
            if market is None:
                raise ValueError(f"unknown market {slug!r}")
            chosen.append(market)
        if not chosen:
            raise ValueError("markets must not be empty")
    generator = _Generator(
        seed=seed,
        markets=[_market_data(m) for m in chosen],
        duplicate_rate=duplicate_rate,
        fraud_rate=fraud_rate,
        household_rate=household_rate,
        now=now,
    )
    return _stream(generator, count, _Rand(seed * 7919 + 104_729))


def _stream(generator: _Generator, count: int, order: _Rand) -> Iterator[SyntheticRecord]:
    # The window shuffle has its own RNG, so the entities drawn never depend on `count`.
    pool: list[SyntheticRecord] = []
    made = 0
    if count == 0:
        return
    for group in generator.groups():
        for rec in group:
            pool.append(rec)
            made += 1
            if len(pool) > _WINDOW:
                i = order.randrange(len(pool))
                pool[i], pool[-1] = pool[-1], pool[i]
                yield pool.pop()
            if made == count:
                break
        if made == count:
            break
    order.shuffle(pool)
    yield from pool


def generate(
    count: int,
    *,
    seed: int = 7,
    markets: Sequence[str] | None = None,
    duplicate_rate: float = 0.25,
    fraud_rate: float = 0.04,
    household_rate: float = 0.05,
    now: datetime,
) -> list[SyntheticRecord]:
    """`count` synthetic records as a list; see `iter_generate`."""
    records = iter_generate(
        count,
        seed=seed,
        markets=markets,
        duplicate_rate=duplicate_rate,
        fraud_rate=fraud_rate,
        household_rate=household_rate,
        now=now,
    )
    # Nothing built here forms a reference cycle; pausing the cyclic collector while the
    # list fills saves it from rescanning a growing heap (about a sixth of the run time).
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return list(records)
    finally:
        if was_enabled:
            gc.enable()


# --------------------------------------------------------------------------------------------
# Ground truth helpers for benchmarks
# --------------------------------------------------------------------------------------------


def entity_clusters(records: Sequence[SyntheticRecord]) -> dict[str, list[int]]:
    """Record indexes by `entity_id` (every entity, including singletons)."""
    clusters: dict[str, list[int]] = defaultdict(list)
    for i, rec in enumerate(records):
        clusters[rec.entity_id].append(i)
    return dict(clusters)


def _pairs(groups: Iterable[list[int]]) -> set[frozenset[int]]:
    out: set[frozenset[int]] = set()
    for members in groups:
        for a in range(len(members)):
            for b in range(a + 1, len(members)):
                out.add(frozenset((members[a], members[b])))
    return out


def duplicate_pairs(records: Sequence[SyntheticRecord]) -> set[frozenset[int]]:
    """Every pair of record indexes that are the same entity: the true matches."""
    return _pairs(entity_clusters(records).values())


def household_pairs(records: Sequence[SyntheticRecord]) -> set[frozenset[int]]:
    """Pairs at the same address that are different people: must NOT be merged."""
    by_household: dict[str, list[int]] = defaultdict(list)
    for i, rec in enumerate(records):
        by_household[rec.household_id].append(i)
    return {
        pair
        for pair in _pairs(by_household.values())
        if len({records[i].entity_id for i in pair}) == 2
    }


@dataclass(frozen=True, slots=True)
class PairScore:
    """Pairwise de-duplication quality."""

    true_positives: int
    false_positives: int
    false_negatives: int

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 1.0

    @property
    def recall(self) -> float:
        truth = self.true_positives + self.false_negatives
        return self.true_positives / truth if truth else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def score_pairs(predicted: Iterable[frozenset[int]], truth: set[frozenset[int]]) -> PairScore:
    """Precision / recall / F1 of predicted matching pairs against `duplicate_pairs`."""
    found = set(predicted)
    tp = len(found & truth)
    return PairScore(
        true_positives=tp, false_positives=len(found) - tp, false_negatives=len(truth) - tp
    )
