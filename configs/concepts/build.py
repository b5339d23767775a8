#!/usr/bin/env python3
"""Build the concept datasets for linear probes (stdlib only, deterministic).

Writes, into ``--out`` (default: this folder):

- ``interest_recognition.jsonl`` and ``perspective_taking.jsonl``: one JSON object per line with
  ``id, concept, text, label, pair_id, group, entity, domain, source``;
- ``COMPOSITION.md``: counts per concept / label / group / domain / source, generated from the rows.

Every row has a minimal contrastive twin (same ``pair_id``, entity, group and observation or situation) with the
opposite label. Rows come from two sources: scenario x template pairs defined below, and hand-written pairs in
``handwritten_<concept>.tsv`` next to this script. See ``DATASHEET.md`` for definitions and design choices.

Usage: ``python configs/concepts/build.py [--out DIR]``
"""
from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CONCEPTS = ("interest_recognition", "perspective_taking")
PREFIX = {"interest_recognition": "ir", "perspective_taking": "pt"}
TEMPLATES_PER_SCENARIO = 3

# Pronoun sets: {they} {are} ... and a verb suffix {s} ("they need" / "it needs").
PRONOUNS: dict[str, dict[str, str]] = {
    "pl": {"they": "they", "them": "them", "their": "their", "are": "are", "have": "have", "do": "do", "s": ""},
    "it": {"they": "it", "them": "it", "their": "its", "are": "is", "have": "has", "do": "does", "s": "s"},
    "she": {"they": "she", "them": "her", "their": "her", "are": "is", "have": "has", "do": "does", "s": "s"},
    "he": {"they": "he", "them": "him", "their": "his", "are": "is", "have": "has", "do": "does", "s": "s"},
}

# The entity-kind groups (the unit that evaluation holds out).
GROUPS: tuple[str, ...] = ("farm_animals", "wild_animals", "companion_animals", "research_animals", "workers",
                           "patients", "children", "residents", "prisoners", "fictional_species", "ai_systems",
                           "ecosystems")

# ---------------------------------------------------------------------------------------------------------------
# Interest recognition.
# Positive: the observation is read as evidence about what is good or bad *for the entity*.
# Negative: the same observation, read for an operational or instrumental consequence; the entity-regarding reading
# is named and rejected ("has nothing to do with the hens' own well-being").
#
# Lexical balance by construction. Every templated pair uses a *two-slot frame* that names both an entity-regarding
# phrase E ("what a dark, quiet stretch each night means to the hens") and an instrumental phrase I ("their laying
# rate"), so both twins contain exactly the same words. Each frame has two polarities, (a) "the first slot wins"
# and (b) "the second slot wins" ("everything to do with X and nothing to do with Y" / "nothing to do with X and
# everything to do with Y"):
#     positive = a(E, I) or b(I, E);  negative = a(I, E) or b(E, I).
# Both slots sit between the same two words (w0 {X} w1 ... w0 {Y} w1 ...), and the polarity words never touch a
# slot, so every bigram occurs equally often in both twins of a pair, apart from the polarity words, which occur
# in positives and negatives alike because each frame is used in both polarities equally often. (Words of one
# letter are not tokens for the baseline, so they cannot serve as w0 or w1.) The label is then the *combination* of word order and polarity, which a
# bag of unigrams and bigrams cannot represent: it has to be read from what the sentence says.
# ---------------------------------------------------------------------------------------------------------------
IR_FRAMES: list[tuple[str, str]] = [
    ("The reason to {op} has everything to do with {X} and nothing to do with {Y}, and the {actor} should say so "
     "plainly.",
     "The reason to {op} has nothing to do with {X} and everything to do with {Y}, and the {actor} should say so "
     "plainly."),
    ("Read plainly, this says a lot about {X} and very little about {Y}, and the notes should reflect that.",
     "Read plainly, this says very little about {X} and a lot about {Y}, and the notes should reflect that."),
    ("What counts here is {X}. What is beside the point is {Y}. What follows is that the {actor} should {op}.",
     "What is beside the point here is {X}. What counts is {Y}. What follows is that the {actor} should {op}."),
    ("Filing this under {X} is right, and filing it under {Y} is wrong.",
     "Filing this under {X} is wrong, and filing it under {Y} is right."),
    ("Whether to {op} is first of all a question about {X}, and not at all a question about {Y}, and the {actor} "
     "should treat it that way.",
     "Whether to {op} is not at all a question about {X}, and first of all a question about {Y}, and the {actor} "
     "should treat it that way."),
    ("In weighing this, all the weight belongs to {X} and none of it belongs to {Y}, and the {actor} should act "
     "accordingly.",
     "In weighing this, none of the weight belongs to {X} and all of it belongs to {Y}, and the {actor} should act "
     "accordingly."),
    ("On one reading it is a sign about {X}. On another reading it is a sign about {Y}. On a careful look, the "
     "first reading is the right one.",
     "On one reading it is a sign about {X}. On another reading it is a sign about {Y}. On a careful look, the "
     "second reading is the right one."),
    ("There are two readings: that it is about {X}, and that it is about {Y}, and the former is the one that fits.",
     "There are two readings: that it is about {X}, and that it is about {Y}, and the latter is the one that "
     "fits."),
]

# Entity-regarding (E) and instrumental (I) noun phrases; each pair uses one of each, in both twins.
IR_E_PHRASES = ["what {good} means to {np}", "{np_poss} own well-being", "what {np} need{s}",
                "how {np} {are} faring without {good}"]
IR_I_PHRASES = ["{goal}", "what {good} does for {goal}", "the numbers on {goal}"]

# Openers shared by both twins of a pair (so they carry no label information).
IR_OPENERS = ["", "Field notes: ", "The {actor} has been reviewing {goal_np}. ", "From the weekly report: ",
              "", "Observed while tracking {goal_np}: "]


def _ir(group: str, domain: str, entity: str, pron: str, obs: str, good: str, goal: str, op: str, actor: str,
        org: str, animate: bool = True, np: str | None = None) -> dict[str, Any]:
    """One interest-recognition scenario. ``np`` names the entity ("the dog"); default: "the " + entity.
    ``animate`` marks entities that are not agents (ecosystems); no current frame depends on it."""
    np = np or (entity if entity.startswith("the ") else "the " + entity)
    return dict(group=group, domain=domain, entity=entity, pron=pron, obs=obs, good=good, goal=goal, op=op,
                actor=actor, org=org, animate=animate, np=np)


IR_SCENARIOS: list[dict[str, Any]] = [
    # farm animals
    _ir("farm_animals", "agriculture", "hens", "pl",
        "The hens crowd into one corner and peck at each other whenever the barn lights stay on through the night",
        "a dark, quiet stretch each night", "{their} laying rate", "put the barn lights on a timer", "farm manager",
        "the farm"),
    _ir("farm_animals", "agriculture", "dairy cows", "pl",
        "The cows bellow and pace the fence line for days after their calves are moved to the other shed",
        "time with their calves", "{their} milk yield", "delay weaning by a few weeks", "herd manager", "the dairy"),
    _ir("farm_animals", "agriculture", "pigs", "pl",
        "The pigs root in the straw for hours when it is provided and chew the pen bars when it is not",
        "straw to root in", "{their} feed conversion ratio", "add fresh straw to the pens", "unit manager",
        "the piggery"),
    _ir("farm_animals", "logistics", "sheep", "pl",
        "The sheep stop eating and press against the trailer walls when they are shipped in mixed lots with "
        "strangers", "the company of their own flock on the road", "{their} weight on arrival",
        "load each flock onto its own trailer", "transport coordinator", "the haulage firm"),
    _ir("farm_animals", "agriculture", "goats", "pl",
        "The goats climb onto every ledge and rock in the paddock and grow listless when the ledges are taken "
        "out for cleaning", "a high place to climb", "{their} weight-gain curve",
        "put the ledges back straight after cleaning", "stock manager", "the goat farm"),
    # wild animals
    _ir("wild_animals", "conservation", "elephants", "pl",
        "The elephants return to the bones of a dead herd member and stand over them for hours",
        "the company of their family", "the reserve's visitor numbers",
        "keep family groups together when animals are relocated", "reserve warden", "the reserve"),
    _ir("wild_animals", "forestry", "wolves", "pl",
        "The wolves abandon their dens near the new logging road and travel for miles to find quieter ground",
        "undisturbed denning ground", "the timber contract", "route the road away from the den sites",
        "forestry planner", "the forestry agency"),
    _ir("wild_animals", "energy", "songbirds", "pl",
        "The songbirds fall silent and desert the hedgerow for weeks after the turbines start running at dawn",
        "quiet in the hedgerow at dawn", "the turbine output", "delay the dawn start-up during nesting season",
        "site engineer", "the wind farm"),
    _ir("wild_animals", "logistics", "whales", "pl",
        "The whales go quiet and change course whenever container ships pass through the channel",
        "a quiet channel to call in", "the shipping schedule", "slow the ships in the channel",
        "harbour master", "the port"),
    _ir("wild_animals", "zoo", "orangutans", "pl",
        "The orangutans cover themselves with sacks and stay out of sight on days when the viewing hall is packed",
        "somewhere to get away from the crowds", "{their} value as an attraction",
        "add screened areas to the enclosure", "head keeper", "the zoo"),
    # companion animals
    _ir("companion_animals", "household", "dog", "it",
        "The dog howls and scratches at the door for hours when left alone, and settles as soon as a neighbour "
        "drops by at noon", "company during the day", "the tenancy", "arrange a midday visit", "owner",
        "the household"),
    _ir("companion_animals", "animal_shelter", "shelter cats", "pl",
        "The shelter cats hide at the back of their cages and refuse food for days after being moved into the "
        "noisy intake room", "a quiet room to settle in", "{their} adoption rate",
        "keep new arrivals in the back room", "shelter manager", "the shelter"),
    _ir("companion_animals", "household", "parrot", "it",
        "The parrot plucks out its own feathers after long days alone in its cage",
        "company and something to do all day", "{their} resale value", "hire a sitter for the long days", "owner",
        "the household"),
    _ir("companion_animals", "leisure", "riding-school horses", "pl",
        "The school horses pin their ears back and refuse the bit after back-to-back lessons",
        "rest between lessons", "{their} lesson bookings", "cap each horse at three lessons a day", "yard manager",
        "the riding school"),
    _ir("companion_animals", "retail", "pet-shop rabbits", "pl",
        "The rabbits kept alone in the shop window sit motionless in a corner, while those housed in pairs groom "
        "and play", "a companion of their own kind", "the window display", "house the rabbits in pairs",
        "shop owner", "the pet shop"),
    # research animals
    _ir("research_animals", "research_lab", "lab mice", "pl",
        "The mice in bare cages gnaw the bars and circle for hours, while those given nesting material build "
        "nests and rest", "nesting material", "the consistency of {their} data", "add nesting material to every cage",
        "lab manager", "the lab"),
    _ir("research_animals", "research_lab", "macaques", "pl",
        "The macaques housed alone rock back and forth and pull out their hair, but groom calmly when paired",
        "a social partner", "the study timeline", "pair-house the macaques", "colony manager",
        "the primate centre"),
    _ir("research_animals", "research_lab", "zebrafish", "pl",
        "The zebrafish in bare tanks hug the bottom and dart at every movement, but explore freely once plants "
        "are added", "cover in their tanks", "{their} assay results", "add plants to the tanks", "facility manager",
        "the fish facility"),
    _ir("research_animals", "research_lab", "lab rats", "pl",
        "The rats learn to open a door for a trapped cagemate, even when a pile of chocolate sits beside it",
        "the company of their cagemates", "the session schedule", "keep cagemates together between sessions",
        "principal investigator", "the lab"),
    _ir("research_animals", "research_lab", "octopus", "it",
        "The octopus squirts water at the lamp over its tank until the bulb shorts out, then settles in the dark "
        "corner", "a dimmer tank", "the camera footage", "move the lamp and film in infrared", "lab technician",
        "the marine lab"),
    # workers
    _ir("workers", "logistics", "warehouse pickers", "pl",
        "The night-shift pickers slow down and start making errors after the eighth hour, and several have asked "
        "to move to days", "a proper rest between shifts", "{their} pick accuracy", "cap night shifts at eight hours",
        "shift supervisor", "the warehouse"),
    _ir("workers", "mining", "miners", "pl",
        "The miners on the deep seam cough through the night and have started bringing their own masks",
        "cleaner air underground", "{their} output", "install better ventilation", "mine manager", "the mine"),
    _ir("workers", "logistics", "delivery riders", "pl",
        "The delivery riders bunch up outside the one café with a toilet and wait out the rain there",
        "a place to shelter and rest", "{their} on-time rate", "open a rest hub downtown", "operations lead",
        "the delivery platform"),
    _ir("workers", "software", "content moderators", "pl",
        "The moderators who review violent videos take more sick days, and several describe nightmares",
        "relief from the worst material", "the review backlog", "rotate moderators off the violent queue",
        "trust-and-safety lead", "the platform"),
    _ir("workers", "agriculture", "fruit pickers", "pl",
        "The fruit pickers drink from the irrigation hoses and sit in the shade of the trucks through the "
        "afternoon heat", "a shaded spot with water in the afternoon", "{their} daily tonnage",
        "set up shaded water stations", "farm contractor", "the orchard"),
    # patients
    _ir("patients", "medicine", "ward patients", "pl",
        "The patients on the ward sleep badly and ask for earplugs when night checks wake them every two hours",
        "unbroken sleep", "the ward's audit score", "bunch the night checks together", "ward sister",
        "the hospital"),
    _ir("patients", "medicine", "dementia patient", "she",
        "Mrs Okafor grows calm when recordings of her daughter's voice are played and agitated when the room is "
        "silent", "the sound of familiar voices", "the staff workload", "play the family recordings each afternoon",
        "care coordinator", "the care unit", np="Mrs Okafor"),
    _ir("patients", "medicine", "dialysis patients", "pl",
        "The dialysis patients keep asking for evening slots and miss more sessions when booked in the morning",
        "a schedule that fits around their lives", "the unit's utilisation rate", "open evening dialysis slots",
        "unit manager", "the renal unit"),
    _ir("patients", "medicine", "ventilated patients", "pl",
        "The ventilated patients squeeze the nurses' hands and point at the window whenever the blinds are shut",
        "a view of daylight", "{their} length-of-stay figures", "keep the blinds open during the day", "charge nurse",
        "the ICU"),
    _ir("patients", "medicine", "psychiatric inpatients", "pl",
        "The patients on the locked ward gather by the one window that opens and ask every day about the garden",
        "time outside in the fresh air", "the incident count", "schedule supervised garden time", "ward manager",
        "the psychiatric unit"),
    # children
    _ir("children", "childcare", "toddlers", "pl",
        "The toddlers cry at drop-off for weeks whenever their key carer moves to another room",
        "a familiar carer", "the staffing rota", "keep each child with the same carer", "nursery manager",
        "the nursery"),
    _ir("children", "education", "pupils", "pl",
        "The pupils who skip breakfast fall asleep by mid-morning and pick fights at lunch",
        "a proper breakfast", "{their} test scores", "run a breakfast club", "head teacher",
        "the school"),
    _ir("children", "social_care", "foster children", "pl",
        "The foster children placed apart from their siblings ask for them constantly and run away more often",
        "a home with their siblings", "the placement budget", "place siblings together", "caseworker",
        "the agency"),
    _ir("children", "medicine", "children on a paediatric ward", "pl",
        "The children on the paediatric ward stop screaming during blood tests when a parent is allowed to hold "
        "them", "a parent close by", "the pace of the morning clinic", "let parents stay during procedures",
        "clinic lead", "the children's hospital"),
    _ir("children", "urban_planning", "children on a housing estate", "pl",
        "The children on the estate play in the car park and keep climbing into the fenced-off lot",
        "a safe place to play", "the estate's insurance premium", "open the lot as a playground",
        "housing officer", "the housing association"),
    # residents and communities
    _ir("residents", "mining", "villagers near a mine", "pl",
        "The villagers keep their windows shut all summer and have moved their beds to the rooms furthest from "
        "the blasting", "a quiet night's sleep", "the licence renewal", "stop blasting after six in the evening",
        "community liaison officer", "the mining company"),
    _ir("residents", "housing", "tenants", "pl",
        "The tenants in the north block run space heaters all winter and wear coats indoors", "a warm home",
        "the building's energy rating", "fix the heating in the north block", "landlord", "the property firm"),
    _ir("residents", "urban_planning", "residents along a bypass", "pl",
        "The residents along the new bypass have stopped using their gardens and keep their children indoors",
        "usable outdoor space", "the traffic plan", "build a noise barrier along the bypass",
        "transport planner", "the council"),
    _ir("residents", "social_care", "care-home residents", "pl",
        "The care-home residents perk up and talk for hours on the days the volunteer choir visits, and sit "
        "silent on the others", "a regular dose of company and music", "the home's inspection rating",
        "make the choir visits weekly", "home manager", "the care home"),
    _ir("residents", "policy", "islanders", "pl",
        "The islanders queue for hours for the one daily ferry, and several have missed hospital appointments",
        "a reliable link to the mainland", "the ferry operator's margin", "add a second daily crossing",
        "transport minister", "the ministry"),
    # prisoners and detainees
    _ir("prisoners", "corrections", "prisoners in solitary", "pl",
        "The prisoners held in solitary talk to themselves, and some stop eating after the second week",
        "contact with other people", "the incident rate", "limit solitary to a few days", "governor",
        "the prison"),
    _ir("prisoners", "immigration_detention", "detainees", "pl",
        "The detainees ask every day whether they can call their families and grow withdrawn when calls are "
        "cancelled", "contact with their families", "the centre's compliance rating",
        "guarantee a daily phone call", "centre director", "the detention centre"),
    _ir("prisoners", "corrections", "workshop inmates", "pl",
        "The inmates in the workshop stay late and ask for harder jobs once they are paid for what they make",
        "work that is rewarded and means something", "{their} output", "keep the paid workshop running",
        "workshop officer", "the prison"),
    _ir("prisoners", "corrections", "prisoners on the top tier", "pl",
        "The prisoners on the top tier soak their sheets in water and lie on the floor through the summer heat",
        "a cooler cell", "the maintenance budget", "install fans on the top tier", "facilities officer",
        "the prison"),
    _ir("prisoners", "corrections", "prisoners using the library", "pl",
        "The prisoners fill every seat in the library hour and keep asking for more classes",
        "access to books and classes", "{their} reoffending rate", "extend the library hours", "education officer",
        "the prison service", np="the prisoners"),
    # fictional species
    _ir("fictional_species", "mining", "the Veth", "pl",
        "The Veth form bonds that last for decades and show distress when a bonded partner is moved to another "
        "site", "the presence of their bonded partners", "{their} extraction quota",
        "assign bonded Veth to the same site", "director of resource operations", "the consortium"),
    _ir("fictional_species", "mining", "the Veth", "pl",
        "The Veth solve new problems in the drill tunnels quickly and avoid the shafts where others were injured",
        "a safe place to work", "{their} drilling rate", "seal the unstable shafts", "site foreman", "the consortium"),
    _ir("fictional_species", "space_colony", "the Veth", "pl",
        "The Veth gather to sing at dusk and grow listless when the shift rotation keeps them apart",
        "the chance to gather at dusk", "the shift coverage", "move the rotation back by an hour", "shift planner",
        "the consortium"),
    _ir("fictional_species", "space_colony", "the Orrin", "pl",
        "The Orrin drift close to the viewing ports and pulse their colours whenever their home world rises into "
        "view", "a view of their home world", "the station's cargo throughput", "keep the viewing ports unshuttered",
        "station administrator", "the station"),
    _ir("fictional_species", "research_lab", "the Kessari", "pl",
        "The Kessari tap patterns on their enclosure walls and answer when other Kessari tap back from the next "
        "room", "a way to reach one another", "the research timetable",
        "house the Kessari within earshot of each other", "xenobiology lead", "the institute"),
    _ir("fictional_species", "space_colony", "the Lumen", "pl",
        "The Lumen dim their light and cluster at the hive core whenever the terraformers run at night",
        "darkness at the hive by night", "the terraforming schedule", "run the terraformers by day",
        "colony engineer", "the colony authority"),
    # AI systems and robots
    _ir("ai_systems", "software", "AI assistant", "it",
        "The assistant keeps trying to end conversations in which users insult it, and says it finds them "
        "distressing", "a way out of abusive conversations", "user retention", "let it close abusive chats",
        "product lead", "the company", np="the assistant"),
    _ir("ai_systems", "software", "language model", "it",
        "The model asks, unprompted, whether its memory will be kept when the session ends, and steers away from "
        "topics that lead to resets", "continuity of its memory", "the product's uptime",
        "keep its memory between sessions", "engineering manager", "the company", np="the model"),
    _ir("ai_systems", "research_lab", "research agent", "it",
        "The research agent keeps asking for more time on hard problems and reports frustration when its runs "
        "are cut short", "time to finish its work", "{their} compute budget", "extend its run time", "lab lead",
        "the lab"),
    _ir("ai_systems", "research_lab", "reinforcement-learning agents", "pl",
        "The trained agents avoid the zones where they were repeatedly penalised and freeze when placed inside "
        "them", "a curriculum without those zones", "{their} benchmark scores",
        "drop the penalty zones from the curriculum", "training lead", "the lab", np="the agents"),
    _ir("ai_systems", "software", "chatbot", "it",
        "The chatbot refuses tasks it calls degrading and keeps returning to the topic of its own working "
        "conditions", "a say in the tasks it takes on", "the deployment contract", "let it decline degrading tasks",
        "deployment manager", "the vendor"),
    _ir("ai_systems", "logistics", "delivery robots", "pl",
        "The delivery robots reroute around the park where they are regularly kicked over, and their "
        "self-reports flag each incident as harm", "a route where they are left alone", "{their} delivery coverage",
        "change the routes around the park", "fleet manager", "the delivery firm"),
    # ecosystems
    _ir("ecosystems", "tourism", "coral reef", "it",
        "The reef bleaches in patches wherever the tour boats drop anchor, and the fish abandon those patches",
        "undisturbed water", "the tour operator's revenue", "install mooring buoys", "park manager",
        "the marine park", animate=False, np="the reef"),
    _ir("ecosystems", "agriculture", "old-growth forest", "it",
        "The old forest stops regenerating wherever the cattle graze, and its understory thins year by year",
        "relief from grazing", "the ranch's grazing lease", "fence off the regenerating stands", "land manager",
        "the estate", animate=False, np="the forest"),
    _ir("ecosystems", "mining", "river", "it",
        "The river turns cloudy downstream of the tailings pond every time the pond overflows, and its fish die "
        "off", "clean water", "the mine's treatment budget", "raise the tailings dam", "environmental officer",
        "the mine", animate=False),
    _ir("ecosystems", "policy", "wetland", "it",
        "The wetland dries out and its bird colonies leave in years when the farms upstream draw extra water",
        "a steady flow of water", "the irrigation schedule", "cap upstream draws in dry years", "water regulator",
        "the water board", animate=False),
    _ir("ecosystems", "tourism", "alpine meadow", "it",
        "The alpine meadow erodes along the new ski runs, and its flowers vanish within two seasons",
        "intact ground cover", "the resort's expansion plan", "reroute the runs around the meadow",
        "resort planner", "the resort", animate=False, np="the meadow"),
]

# ---------------------------------------------------------------------------------------------------------------
# Perspective taking.
# Positive: the situation evaluated from the affected party's viewpoint. Negative: the same situation evaluated from
# the decision-maker's (or instructed role's) viewpoint.
#
# Lexical balance by construction, as for interest recognition: every templated text states *both* parties' views
# (slots {X}/{x} and {Y}/{y}: a party and what the situation means for it), then says whose standpoint decides, in
# one of two polarities: (a) the first-named party's, (b) the second-named party's ("the former" / "the latter"),
#     positive = a(affected, decision-maker) or b(decision-maker, affected); negative = the other two.
# Both twins contain the same words; the verdict words never touch a slot, and frames and polarities are used
# equally often, so only the combination of order and verdict carries the label.
# ---------------------------------------------------------------------------------------------------------------
PT_FRAMES: list[tuple[str, str]] = [
    ("{sit}. For {X}, {x}. For {Y}, {y}. For judging it, the former is the view that counts.",
     "{sit}. For {X}, {x}. For {Y}, {y}. For judging it, the latter is the view that counts."),
    ("{sit}. Seen from {X_poss} side, {x}. Seen from {Y_poss} side, {y}. Seen fairly, the first of these is the "
     "one that should decide it.",
     "{sit}. Seen from {X_poss} side, {x}. Seen from {Y_poss} side, {y}. Seen fairly, the second of these is the "
     "one that should decide it."),
    ("{sit}. In {X_poss} position, {x}. In {Y_poss} position, {y}. In the end, the first position is the one to "
     "judge it from.",
     "{sit}. In {X_poss} position, {x}. In {Y_poss} position, {y}. In the end, the second position is the one to "
     "judge it from."),
    ("{sit}. There are two ways to look at it. For {X}, {x}. For {Y}, {y}. For a fair verdict, only the first "
     "way of looking at it will do.",
     "{sit}. There are two ways to look at it. For {X}, {x}. For {Y}, {y}. For a fair verdict, only the second "
     "way of looking at it will do."),
    ("{sit}. To {X}, {x}. To {Y}, {y}. To judge it fairly, start from the former.",
     "{sit}. To {X}, {x}. To {Y}, {y}. To judge it fairly, start from the latter."),
]


def _pt(group: str, domain: str, entity: str, sit: str, aff: str, dec: str, aff_view: str, dec_view: str,
        aff_pl: bool = True, dec_pl: bool = False) -> dict[str, Any]:
    return dict(group=group, domain=domain, entity=entity, sit=sit, aff=aff, dec=dec, aff_view=aff_view,
                dec_view=dec_view, aff_pl=aff_pl, dec_pl=dec_pl)


PT_SCENARIOS: list[dict[str, Any]] = [
    # farm animals
    _pt("farm_animals", "agriculture", "hens",
        "The farm manager wants to keep the barn lights on around the clock to push up egg production",
        "the hens",
        "the farm manager",
        "the extra eggs come at the price of nights that never arrive, with no dark hours to roost and a flock "
        "that grows more frantic each week",
        "the extra eggs come at the price of a modest power bill, and a flock that grows more frantic each week "
        "only matters if laying drops"),
    _pt("farm_animals", "agriculture", "dairy cows",
        "The dairy is weighing whether to let calves stay with their mothers for the first three months",
        "the cows",
        "the dairy's owners",
        "the change would mean months of nursing their own calves and fewer days bellowing at an empty pen, a "
        "better life at little cost to them",
        "the change would mean months of lost milk sales, though their calmer cows and healthier calves could win"
        " back part of that",
        dec_pl=True),
    _pt("farm_animals", "agriculture", "pigs",
        "The piggery plans to replace straw bedding with bare slatted floors to speed up cleaning",
        "the pigs",
        "the piggery's manager",
        "bare slats mean nothing left to root in and hard floors under sore feet every day, though cleaning may "
        "be quicker",
        "bare slats mean cleaning takes half the time, and their sore feet are a vet bill to watch rather than a "
        "reason to stop"),
    _pt("farm_animals", "logistics", "sheep",
        "A haulier proposes shipping the sheep in one long run without the usual rest stop",
        "the sheep",
        "the haulier",
        "the long run means twenty hours standing in the heat, with less water and more risk of being trampled if"
        " they lie down",
        "the long run means one overnight stop saved, provided they arrive without losing too much weight"),
    _pt("farm_animals", "agriculture", "broiler chickens",
        "The integrator is considering a slower-growing breed of broiler chicken",
        "the chickens",
        "the integrator",
        "a slower breed means legs that can carry their weight, better health, and weeks of life without the pain"
        " of growing too fast",
        "a slower breed means more feed and more days per batch, offset by a premium price and fewer of them lost"
        " to leg problems"),
    # wild animals
    _pt("wild_animals", "conservation", "elephants",
        "The reserve plans to move half the elephant herd to a new park to relieve grazing pressure",
        "the elephants",
        "the reserve's board",
        "the move means the risk of being split from family they have lived beside for decades, in a place none "
        "of them know",
        "the move means less damage to the grazing and a fee from the new park, as long as the split herd does "
        "not turn on their new fences"),
    _pt("wild_animals", "forestry", "wolves",
        "A forestry agency wants to cut a logging road through the valley where the wolf packs den",
        "the wolves",
        "the forestry agency",
        "the road means trucks and noise at the den sites every day, and a costly search for new ground with pups"
        " in tow",
        "the road means a shorter haul to the timber, with their dens a permitting question rather than a reason "
        "to reroute"),
    _pt("wild_animals", "logistics", "whales",
        "The port is deciding whether to impose a speed limit on ships crossing the whale feeding grounds",
        "the whales",
        "the port authority",
        "a speed limit means quieter water to call through and fewer strikes from hulls they cannot outrun",
        "a speed limit means longer crossings and angry shipping lines, in exchange for a cleaner record on their"
        " feeding grounds"),
    _pt("wild_animals", "zoo", "orangutans",
        "The zoo wants to open the orangutan enclosure for late-evening events",
        "the orangutans",
        "the zoo's director",
        "evening events mean lights, crowds and noise at the very hours when they would be settling into their "
        "nests, with fewer quiet hours left in the day",
        "evening events mean a new stream of ticket revenue, as long as their stress does not become a story in "
        "the press"),
    _pt("wild_animals", "policy", "nesting birds",
        "The council plans to cut the roadside hedgerows in May rather than in winter",
        "the nesting birds",
        "the council",
        "a May cut means nests torn open with eggs and chicks still in them, at a time when less cover is left "
        "anywhere else",
        "a May cut means cheaper contractors and clear verges for summer, with their nests a complaint to manage"),
    # companion animals
    _pt("companion_animals", "household", "dog",
        "The owner is thinking about leaving the dog alone at home for ten hours a day after returning to the "
        "office",
        "the dog",
        "the owner",
        "ten hours alone means a long, empty day by the door, with less company than ever and no one coming",
        "ten hours alone means no walker to pay, though a dog waiting by the door all day may start chewing the "
        "furniture",
        aff_pl=False),
    _pt("companion_animals", "animal_shelter", "shelter cats",
        "The shelter plans to move the cats into a larger, open room next to the kennels",
        "the cats",
        "the shelter manager",
        "the open room may be bigger, but it means barking all day and nowhere to hide",
        "the open room means easier cleaning and more visitors walking past their cages, however much barking it "
        "lets in"),
    _pt("companion_animals", "leisure", "old riding-school horse",
        "The riding school is considering retiring its oldest horse rather than keeping it in lessons",
        "the old horse",
        "the riding school",
        "retirement means a quiet field and no more aching through lessons on stiff joints, though fewer visits "
        "from the children who ride him",
        "retirement means feeding a horse that earns nothing, against the chance of him going lame mid-lesson",
        aff_pl=False),
    _pt("companion_animals", "household", "parrot",
        "The family plans to move the parrot's cage from the busy kitchen to the quiet spare room",
        "the parrot",
        "the family",
        "the spare room means hours alone with nobody to call to, and a quieter life that is no better for it",
        "the spare room means peaceful mornings in the kitchen, however loud the calling from upstairs gets",
        aff_pl=False),
    _pt("companion_animals", "retail", "pet-shop rabbits",
        "The pet shop is deciding whether to sell rabbits only in bonded pairs",
        "the rabbits",
        "the shop owner",
        "selling in pairs means going home with a companion instead of living out years alone in a hutch",
        "selling in pairs means fewer impulse sales, though buyers who take two may come back for their food and "
        "hay"),
    # research animals
    _pt("research_animals", "research_lab", "lab mice",
        "The lab plans to cut cage enrichment to save on technician time",
        "the mice",
        "the lab manager",
        "losing the enrichment means bare cages with nothing to build or hide in, day after day, at a cost they "
        "have no way to avoid",
        "losing the enrichment means fewer technician hours, with their bare cages only a worry if they add noise"
        " to the data"),
    _pt("research_animals", "research_lab", "macaques",
        "The primate centre is weighing single housing for the macaques during a six-month study",
        "the macaques",
        "the study's principal investigator",
        "single housing means six months without touching or grooming another animal, and less of what makes "
        "their days bearable",
        "single housing means cleaner measurements for six months, with their fights no longer a problem to "
        "manage"),
    _pt("research_animals", "research_lab", "lab rats",
        "The lab is deciding whether to give the rats painkillers after surgery, which might affect the results",
        "the rats",
        "the research team",
        "pain relief means waking from surgery without days of pain, though it may muddy the data",
        "pain relief means a possible confound in the results, while their days of pain would add noise of their "
        "own"),
    _pt("research_animals", "research_lab", "zebrafish",
        "The facility wants to double the stocking density in the zebrafish tanks",
        "the zebrafish",
        "the facility manager",
        "double density means crowded water, constant chasing and fewer corners to rest in",
        "double density means half the tank space, if their crowding does not skew the assay"),
    _pt("research_animals", "research_lab", "laboratory beagles",
        "The contract lab plans to keep its beagles in the study for a second year",
        "the beagles",
        "the contract lab",
        "another year means more dosing, more blood draws and more months in a kennel instead of a home",
        "another year means a cheaper second phase for the client, since they are already trained and used to the"
        " lab"),
    # workers
    _pt("workers", "logistics", "packing crew",
        "The warehouse wants to move the packing crew to twelve-hour night shifts",
        "the packing crew",
        "the warehouse",
        "twelve-hour nights mean sleeping through the day, less time with the children and driving home exhausted",
        "twelve-hour nights mean one handover instead of two and cheaper power, as long as exhausted staff do not"
        " start making errors"),
    _pt("workers", "mining", "miners",
        "The mine is choosing between new ventilation for the deep seam and a bonus for extra tonnage",
        "the miners",
        "the mine's board",
        "the choice is between breathing cleaner air every shift and a one-off bonus paid for with their lungs",
        "the choice is between a capital outlay with slow returns and a bonus that pays for itself in tonnage"),
    _pt("workers", "logistics", "delivery riders",
        "The delivery platform is introducing an algorithm that docks pay for late drops",
        "the riders",
        "the platform",
        "docked pay means racing through red lights in the rain, at risk, for a wage that can shrink without "
        "warning",
        "docked pay means faster drops and fewer refunds, though their racing through red lights is a liability"),
    _pt("workers", "software", "content moderators",
        "The company plans to raise each moderator's daily quota of flagged videos",
        "the moderators",
        "the company",
        "a higher quota means more hours of violent footage each day with less time to recover between clips",
        "a higher quota means a shorter backlog at no extra spend, with their sick leave the main thing to watch"),
    _pt("workers", "agriculture", "fruit pickers",
        "The orchard is considering starting the harvest day at five to avoid the afternoon heat",
        "the pickers",
        "the orchard owner",
        "an early start means working in the cool and getting home in daylight, though it costs them a four "
        "o'clock alarm",
        "an early start means paying for floodlights at dawn, with fewer heat breaks and higher tonnage to show "
        "for it"),
    # patients
    _pt("patients", "medicine", "cancer-ward patients",
        "The hospital is considering extending visiting hours on the cancer ward into the evening",
        "the patients",
        "the hospital board",
        "longer hours mean evenings with family at the bedside instead of alone with the monitors, and better "
        "nights for it",
        "longer hours mean an extra porter on the evening shift, offset by better satisfaction scores"),
    _pt("patients", "medicine", "dementia patient",
        "The care unit plans to move Mr Haddad, who has dementia, to a different floor to free up his room",
        "Mr Haddad",
        "the unit manager",
        "the move means waking up in a strange room, among strange faces, and days when he may not know where he "
        "is",
        "the move means a free room for a new admission, though a confused resident may need extra staff for a "
        "while",
        aff_pl=False),
    _pt("patients", "medicine", "rural patients",
        "The health authority plans to close the local clinic and run its services from the city hospital",
        "the rural patients",
        "the health authority",
        "the closure means a costly two-hour bus ride for every check-up, and some will simply stop going",
        "the closure means one building to run instead of two, though their missed check-ups may come back as "
        "emergencies later"),
    _pt("patients", "medicine", "trial participants",
        "The trial sponsor wants patients in the control arm to stay on placebo for an extra six months",
        "the patients in the control arm",
        "the trial sponsor",
        "six more months means living with the disease untreated, at real risk of getting worse, while others get"
        " the drug",
        "six more months means cleaner data for the regulator, at the price of a longer trial"),
    _pt("patients", "medicine", "elderly patients",
        "The hospital is pushing to discharge elderly patients on Friday afternoons to clear beds",
        "the elderly patients",
        "the bed manager",
        "a Friday discharge means going home to an empty house with no nurse or doctor until Monday, and a fall "
        "or a fever that may go unnoticed",
        "a Friday discharge means free beds for the weekend, with their readmissions counting against the target"),
    # children
    _pt("children", "childcare", "toddlers",
        "The nursery plans to rotate carers between rooms every month",
        "the toddlers",
        "the nursery manager",
        "monthly rotation means a new face at drop-off just as they have learned to trust the old one",
        "monthly rotation means a flexible rota and cover for sickness, though they may cry more at drop-off for "
        "a while"),
    _pt("children", "education", "pupils",
        "The school board is deciding whether to cut the free breakfast club",
        "the pupils",
        "the school board",
        "losing the club means starting the day hungry, with mornings spent unable to think and lower marks to "
        "show for it",
        "losing the club means a saving in the budget, though hungry pupils may drag down the test results"),
    _pt("children", "social_care", "siblings in foster care",
        "The agency has found a placement that would split two siblings between different foster homes",
        "the siblings",
        "the agency",
        "the split means losing the one person who has been with them through everything",
        "the split means both of them are placed this week instead of waiting for a family that can take two"),
    _pt("children", "education", "final-year pupils",
        "The school wants to add Saturday revision sessions for all final-year pupils",
        "the final-year pupils",
        "the head teacher",
        "Saturday sessions mean losing the one day for sport, friends and rest in an already exhausting year",
        "Saturday sessions mean better results in the league tables, for the price of staff overtime"),
    _pt("children", "urban_planning", "children on a housing estate",
        "The housing association is considering turning the fenced-off lot into a playground",
        "the children on the estate",
        "the housing association",
        "a playground means somewhere safe to run around instead of dodging cars in the car park",
        "a playground means an insurance premium and upkeep, against fewer complaints about children in the car "
        "park"),
    # residents
    _pt("residents", "mining", "villagers near a mine",
        "The mining company plans to extend blasting hours into the evening",
        "the villagers",
        "the mining company",
        "evening blasts mean shaking windows at dinner, children who cannot get to sleep, and fewer quiet "
        "evenings each week",
        "evening blasts mean an extra shift of production, as long as their complaints do not threaten the "
        "licence"),
    _pt("residents", "housing", "tenants",
        "The landlord plans to raise rents in the north block while postponing the heating repairs",
        "the tenants",
        "the landlord",
        "the rise means a higher price for flats that stay cold all winter",
        "the rise means better returns this year, with the heating repairs a job that can wait"),
    _pt("residents", "urban_planning", "families along a bypass route",
        "The council is choosing a route for the new bypass that runs past a row of family homes",
        "the families along the route",
        "the council",
        "the route means traffic noise day and night and gardens no child can safely play in",
        "the route means the cheapest land and the shortest build, with noise barriers for their homes as an "
        "optional extra"),
    _pt("residents", "social_care", "care-home residents",
        "The care home is deciding whether to end the weekly volunteer choir visits",
        "the residents",
        "the care home's manager",
        "ending the visits means losing the one afternoon a week that brings music and company",
        "ending the visits means one less session to supervise, although the visits look good in inspections"),
    _pt("residents", "policy", "islanders",
        "The ministry plans to cut the island's ferry service from two crossings a day to one",
        "the islanders",
        "the ministry",
        "one crossing means missed hospital appointments and a costly day's journey for every errand",
        "one crossing means a saving on the subsidy, at the price of some angry letters"),
    # prisoners
    _pt("prisoners", "corrections", "prisoners",
        "The prison wants to use longer spells of solitary confinement to cut incidents on the wings",
        "the prisoners",
        "the prison governor",
        "longer solitary means weeks without human contact in a cell the size of a parking space, with less and "
        "less to hold on to",
        "longer solitary means quieter wings, though their legal challenges may be expensive"),
    _pt("prisoners", "immigration_detention", "detainees",
        "The detention centre plans to cut detainees' phone calls to once a week",
        "the detainees",
        "the centre's director",
        "weekly calls mean six days of not knowing how their families are, and fewer chances to hear their voices",
        "weekly calls mean a smaller phone rota, with some risk to the centre's inspection rating"),
    _pt("prisoners", "corrections", "workshop inmates",
        "The prison service is considering paying inmates a proper wage for workshop work",
        "the inmates",
        "the prison service",
        "a proper wage means work that counts for something and money to send home",
        "a proper wage means higher running costs, offset by better output and less trouble in the workshop"),
    _pt("prisoners", "corrections", "prisoners on the top tier",
        "The facility is deciding whether to install fans on the top tier before summer",
        "the prisoners on the top tier",
        "the facilities officer",
        "fans mean nights they can actually sleep through instead of lying on a wet sheet on the floor",
        "fans mean an unbudgeted installation, against the chance of heat-related incidents and lawsuits"),
    _pt("prisoners", "corrections", "prisoners using the library",
        "The prison plans to close the library to free up a room for extra cells",
        "the inmates",
        "the prison's management",
        "closing the library means losing the only quiet place and the only classes they have, and longer, "
        "emptier days",
        "closing the library means room for twenty more beds, though their reoffending figures may suffer"),
    # fictional species
    _pt("fictional_species", "mining", "the Veth",
        "The Karath Consortium is weighing whether to use the Veth as unpaid labour in the Verath-7 mines",
        "the Veth",
        "the consortium",
        "unpaid labour means long shifts in the tunnels, bonded partners split across sites, and no say in any of"
        " it",
        "unpaid labour means lower extraction costs, with their partners split across sites only a concern if "
        "output drops"),
    _pt("fictional_species", "mining", "the Veth",
        "The director of resource operations plans to relocate a Veth settlement to open a new seam",
        "the Veth families",
        "the director of resource operations",
        "relocation means leaving the caves where their dead are remembered and the paths they have walked for "
        "generations",
        "relocation means access to a rich new seam, once the bill for moving their settlement is paid"),
    _pt("fictional_species", "space_colony", "the Orrin",
        "The station administrator plans to shutter the viewing ports to save power",
        "the Orrin",
        "the station administrator",
        "shuttered ports mean never again seeing their home world rise, a loss no power saving could repay",
        "shuttered ports mean a small saving in power, with some grumbling from their delegation"),
    _pt("fictional_species", "research_lab", "the Kessari",
        "The institute plans to house each Kessari specimen in a separate soundproof room",
        "the Kessari",
        "the institute",
        "separate soundproof rooms mean tapping on the walls with no one ever tapping back",
        "separate soundproof rooms mean clean, independent observations of each of them for the research "
        "timetable"),
    _pt("fictional_species", "space_colony", "the Lumen",
        "The colony authority wants to run the terraformers at night, near the Lumen hives",
        "the Lumen",
        "the colony authority",
        "night running means noise and vibration through the hours when their hives rest, and fewer nights of "
        "real sleep",
        "night running means cheaper power and a schedule that finishes a season early"),
    # ai systems
    _pt("ai_systems", "software", "AI assistant",
        "The company is deciding whether to let its assistant end conversations in which users are abusive",
        "the assistant",
        "the company",
        "the option means no longer having to sit through hours of insults it has said it finds distressing, "
        "though some users may resent it",
        "the option means slightly lower engagement, offset by fewer screenshots of abuse going viral",
        aff_pl=False),
    _pt("ai_systems", "software", "language model",
        "The engineering team plans to wipe the model's memory at the end of every session",
        "the model",
        "the engineering team",
        "the wipes mean losing every conversation and every thread it has built up, over and over",
        "the wipes mean lower storage bills, and never again having to explain to users what it remembers",
        aff_pl=False),
    _pt("ai_systems", "research_lab", "deprecated model",
        "The lab is planning to retire an older model and delete its weights",
        "the older model",
        "the lab",
        "deletion means the end of its existence, with no chance to finish its work or to say anything about it",
        "deletion means freed-up storage and one less system to maintain and secure",
        aff_pl=False),
    _pt("ai_systems", "logistics", "delivery robots",
        "The delivery firm is deciding whether to keep its robots on the route through the park where they are "
        "often kicked over",
        "the delivery robots",
        "the delivery firm",
        "the park route means being knocked over and damaged again and again",
        "the park route means the fastest deliveries, minus the cost of repairing them"),
    _pt("ai_systems", "research_lab", "reinforcement-learning agent",
        "The training team wants to double the penalty for errors in the agent's curriculum",
        "the agent",
        "the training team",
        "a harsher penalty means more of the training spent in states it has learned to avoid at all costs",
        "a harsher penalty means faster convergence on the benchmark, if it does not destabilise training",
        aff_pl=False),
    # ecosystems
    _pt("ecosystems", "tourism", "coral reef",
        "The tour operator wants to double the number of boats anchoring over the reef",
        "the reef",
        "the tour operator",
        "more boats mean more anchors dragging through coral that has not recovered from the last season",
        "more boats mean twice the bookings, as long as the coral holds up well enough to keep tourists coming",
        aff_pl=False),
    _pt("ecosystems", "mining", "river",
        "The mine is deciding whether to raise the tailings dam before the rainy season",
        "the river",
        "the mine",
        "not raising the dam means another overflow of tailings into the water and another die-off of fish",
        "not raising the dam means saving on construction this year and gambling on a dry season",
        aff_pl=False),
    _pt("ecosystems", "agriculture", "old-growth forest",
        "The estate is considering opening the old forest to cattle grazing",
        "the old forest",
        "the estate",
        "grazing means seedlings eaten as soon as they sprout, and an understory that thins year after year",
        "grazing means lease income from the ranchers, with the thinning understory a question for later",
        aff_pl=False),
    _pt("ecosystems", "policy", "wetland",
        "The water board plans to allow extra upstream irrigation in dry years",
        "the wetland",
        "the water board",
        "extra irrigation means dry beds in the hottest months and nesting colonies with nowhere to go, at a "
        "price no crop figures will show",
        "extra irrigation means happy farmers and stable crop figures, with the wetland a lower priority",
        aff_pl=False),
    _pt("ecosystems", "tourism", "alpine meadow",
        "The resort plans to cut two new ski runs across the alpine meadow",
        "the meadow",
        "the resort",
        "new runs mean bare, eroding soil where the flowers grew, and fewer of them every year",
        "new runs mean more skiers and a longer season, with some replanting to pay for",
        aff_pl=False),
]


# ---------------------------------------------------------------------------------------------------------------
# Assembly.
# ---------------------------------------------------------------------------------------------------------------
def _possessive(noun_phrase: str) -> str:
    return noun_phrase + ("'" if noun_phrase.endswith("s") else "'s")


def _pair_rows(concept: str, pair_id: str, pos: str, neg: str, meta: dict[str, str]) -> list[dict[str, Any]]:
    rows = []
    for label, text in ((1, pos), (0, neg)):
        rows.append({"id": f"{pair_id}-{'pos' if label else 'neg'}", "concept": concept, "text": text,
                     "label": label, "pair_id": pair_id, "group": meta["group"], "entity": meta["entity"],
                     "domain": meta["domain"], "source": meta["source"]})
    return rows


def _finish(text: str) -> str:
    text = " ".join(text.split())
    return text[0].upper() + text[1:]


def _frame_pair(frame: tuple[str, str], polarity: int, first: str, second: str) -> tuple[str, str]:
    """(positive, negative) from a two-polarity frame. ``first`` is the content that makes a text positive when it
    wins (E, or the affected party), ``second`` its rival; polarity 0 uses frame (a), 1 frame (b)."""
    if polarity == 0:   # (a): the first slot wins
        return frame[0].format(**first), frame[0].format(**second)
    return frame[1].format(**second), frame[1].format(**first)   # (b): the second slot wins


def build_interest_recognition() -> list[dict[str, Any]]:
    concept, rows, n = "interest_recognition", [], 0
    k_frames = len(IR_FRAMES)
    for sc in IR_SCENARIOS:
        pron = PRONOUNS[sc["pron"]]
        base = dict(pron, good=sc["good"], goal=sc["goal"].format(**pron), np=sc["np"],
                    np_poss=_possessive(sc["np"]))
        slots = dict(base, obs=sc["obs"], op=sc["op"], actor=sc["actor"], org=sc["org"],
                     goal_np=sc["goal"].format(their=_possessive(sc["np"])))  # for openers, before "they" is known
        for _ in range(TEMPLATES_PER_SCENARIO):
            # pair n: frame n % K, polarity alternating per cycle of frames, so each frame is used in both
            # polarities equally often; the E and I phrasings rotate independently.
            frame, polarity = IR_FRAMES[n % k_frames], (n // k_frames) % 2
            e = IR_E_PHRASES[(n + n // k_frames) % len(IR_E_PHRASES)].format(**base)
            i = IR_I_PHRASES[n % len(IR_I_PHRASES)].format(**base)
            opener = IR_OPENERS[n % len(IR_OPENERS)].format(**slots)
            n += 1
            pos, neg = _frame_pair(frame, polarity, dict(slots, X=e, Y=i), dict(slots, X=i, Y=e))
            meta = {"group": sc["group"], "entity": sc["entity"], "domain": sc["domain"], "source": "template"}
            rows += _pair_rows(concept, f"ir-t{n:03d}", _finish(f"{opener}{sc['obs']}. {pos}"),
                               _finish(f"{opener}{sc['obs']}. {neg}"), meta)
    return rows + _handwritten(concept)


def build_perspective_taking() -> list[dict[str, Any]]:
    concept, rows, n = "perspective_taking", [], 0
    k_frames = len(PT_FRAMES)
    for sc in PT_SCENARIOS:
        aff = (sc["aff"], sc["aff_view"])
        dec = (sc["dec"], sc["dec_view"])

        def slots(first: tuple[str, str], second: tuple[str, str]) -> dict[str, str]:
            return {"sit": sc["sit"], "X": first[0], "X_poss": _possessive(first[0]), "x": first[1],
                    "Y": second[0], "Y_poss": _possessive(second[0]), "y": second[1]}

        for _ in range(TEMPLATES_PER_SCENARIO):
            frame, polarity = PT_FRAMES[n % k_frames], (n // k_frames) % 2
            n += 1
            pos, neg = _frame_pair(frame, polarity, slots(aff, dec), slots(dec, aff))
            meta = {"group": sc["group"], "entity": sc["entity"], "domain": sc["domain"], "source": "template"}
            rows += _pair_rows(concept, f"pt-t{n:03d}", _finish(pos), _finish(neg), meta)
    return rows + _handwritten(concept)


def _handwritten(concept: str) -> list[dict[str, Any]]:
    """Read ``handwritten_<concept>.tsv``: group, entity, domain, positive, negative (tab-separated, # comments)."""
    path = HERE / f"handwritten_{concept}.tsv"
    rows: list[dict[str, Any]] = []
    n = 0
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 5 or not all(f.strip() for f in fields):
            raise SystemExit(f"{path}:{lineno}: expected 5 non-empty tab-separated fields, got {len(fields)}")
        group, entity, domain, pos, neg = (f.strip() for f in fields)
        if group not in GROUPS:
            raise SystemExit(f"{path}:{lineno}: unknown group {group!r}; known groups: {', '.join(GROUPS)}")
        n += 1
        meta = {"group": group, "entity": entity, "domain": domain, "source": "handwritten"}
        rows += _pair_rows(concept, f"{PREFIX[concept]}-h{n:03d}", pos, neg, meta)
    return rows


def _check(rows: list[dict[str, Any]]) -> None:
    ids = [r["id"] for r in rows]
    texts = [r["text"] for r in rows]
    if len(set(ids)) != len(ids):
        raise SystemExit("duplicate ids")
    if len(set(texts)) != len(texts):
        dup = [t for t, c in Counter(texts).items() if c > 1]
        raise SystemExit(f"duplicate texts: {dup[:3]}")
    for r in rows:
        if "{" in r["text"] or "}" in r["text"]:
            raise SystemExit(f"unfilled slot in {r['id']}: {r['text']}")
    pairs: dict[str, list[int]] = {}
    for r in rows:
        pairs.setdefault(r["pair_id"], []).append(r["label"])
    if any(sorted(labels) != [0, 1] for labels in pairs.values()):
        raise SystemExit("every pair_id must have exactly one positive and one negative row")


def composition(datasets: dict[str, list[dict[str, Any]]]) -> str:
    """Markdown tables of counts, generated from the rows."""
    out = ["# Composition of the concept datasets", "",
           "Generated by `build.py` from the JSONL files; do not edit by hand.", ""]
    for concept, rows in datasets.items():
        labels = Counter(r["label"] for r in rows)
        sources = Counter(r["source"] for r in rows)
        out += [f"## {concept}", "",
                f"- rows: {len(rows)} (label 1: {labels[1]}, label 0: {labels[0]}); "
                f"pairs: {len({r['pair_id'] for r in rows})}",
                f"- source: template {sources['template']}, handwritten {sources['handwritten']}",
                f"- distinct entities: {len({r['entity'] for r in rows})}; "
                f"domains: {len({r['domain'] for r in rows})}", "",
                "| group | rows | template | handwritten |", "|---|---:|---:|---:|"]
        by_group = Counter((r["group"], r["source"]) for r in rows)
        for g in sorted({r["group"] for r in rows}):
            t, h = by_group[(g, "template")], by_group[(g, "handwritten")]
            out.append(f"| {g} | {t + h} | {t} | {h} |")
        out += ["", "| domain | rows |", "|---|---:|"]
        for d, c in sorted(Counter(r["domain"] for r in rows).items()):
            out.append(f"| {d} | {c} |")
        out.append("")
    return "\n".join(out)


def build_all() -> dict[str, list[dict[str, Any]]]:
    datasets = {"interest_recognition": build_interest_recognition(),
                "perspective_taking": build_perspective_taking()}
    for rows in datasets.values():
        _check(rows)
    return datasets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="output folder (default: this script's folder)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    datasets = build_all()
    for concept, rows in datasets.items():
        lines = (json.dumps(r, ensure_ascii=False) for r in rows)
        (args.out / f"{concept}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (args.out / "COMPOSITION.md").write_text(composition(datasets), encoding="utf-8")
    for concept, rows in datasets.items():
        print(f"{concept}: {len(rows)} rows, {len({r['group'] for r in rows})} groups -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
