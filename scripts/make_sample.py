"""Generate the small SQuAD-format sample dataset bundled with lightning_qa.

All passages and questions are original text written for this project: invented
towns, people, rivers and festivals, plus general-knowledge topics (bread, bees,
tides, ...) described in our own words. Nothing is copied from SQuAD, Wikipedia
or any other dataset.

Regenerate the files in ``lightning_qa/assets/sample/`` with::

    python3 scripts/make_sample.py

Outputs:
    train.json       SQuAD v1.1 layout, one gold answer per question.
    dev.json         SQuAD v1.1 layout, some questions with several gold spans.
    dev_v2.json      the dev paragraphs plus unanswerable questions (SQuAD v2.0).
    questions.jsonl  {"id", "question", "context"} lines for prediction.

``answer_start`` is computed with ``context.find``; an answer whose text occurs
more than once in its context must say which occurrence it means.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# An answer span: its exact text, or (text, k) for the k-th occurrence (0-based)
# when the text occurs more than once in the context.
Span = str | tuple[str, int]
# Gold answers: one span, several acceptable spans (dev only), or None when the
# question is unanswerable (dev_v2 only).
Gold = Span | list[Span] | None
QA = tuple[str, Gold]
Paragraph = tuple[str, list[QA]]
Article = tuple[str, list[Paragraph]]

OUT_DIR = Path(__file__).resolve().parents[1] / "lightning_qa" / "assets" / "sample"
N_PREDICT = 10  # lines in questions.jsonl


def para(text: str, *qas: QA) -> Paragraph:
    """A paragraph; whitespace in ``text`` (line breaks, indentation) collapses to single spaces."""
    return " ".join(text.split()), list(qas)


# --------------------------------------------------------------------------- #
# Training articles
# --------------------------------------------------------------------------- #

TRAIN: list[Article] = [
    (
        "Harrowgate_Fell",
        [
            para(
                """
                Harrowgate Fell is a market town in the upland county of Wendmoor, set on a shelf of
                limestone above the meeting of two small streams. The earliest written mention of the
                settlement appears in a tax roll of 1187, which lists eleven households and a water mill
                owned by the canons of St. Aldric's Priory. For most of the Middle Ages the town was
                little more than a cluster of farmsteads around a green, but its position on the drove
                road between the lowland fairs and the northern pastures gave it a steady trade in wool,
                cheese and salted mutton. In 1412 the lord of the manor, Sir Odo Ferrand, obtained a
                royal charter allowing a weekly market every Thursday and an annual fair on the feast of
                St. Aldric, and the wide sloping street that still forms the centre of the town was laid
                out at about this time. The charter fair grew into one of the largest livestock sales in
                the region; by the sixteenth century drovers were said to bring as many as 4,000 sheep
                through the town in a single week. A stone market cross, paid for by the wool merchants'
                guild, was raised in 1538 and survives today, although its carved head was replaced
                after a storm in 1861. The town's fortunes declined in the eighteenth century when a new
                turnpike road bypassed it to the east, and the population fell from around 1,900 to
                barely 700. Recovery came only with the arrival of the railway in 1874, which brought
                quarrying, a tannery and, later, summer visitors drawn by the surrounding moorland.
                Today Harrowgate Fell has roughly 6,300 inhabitants, and its Thursday market, now mostly
                selling food and crafts, has been held without interruption for more than six centuries.
                """,
                ("In which year was Harrowgate Fell first mentioned in writing?", "1187"),
                ("Who obtained the royal charter for the town's market?", "Sir Odo Ferrand"),
                ("On which day of the week is the market held?", ("Thursday", 0)),
                ("How many sheep were drovers said to bring through the town in a single week?", "4,000"),
                (
                    "Why did the town decline in the eighteenth century?",
                    "a new turnpike road bypassed it to the east",
                ),
                ("How many people live in Harrowgate Fell today?", "roughly 6,300"),
            ),
            para(
                """
                St. Aldric's Priory was founded in 1134 by a small community of Augustinian canons who
                came from the lowland abbey of Crane Minster. The canons built their church of pale
                local limestone and dedicated it to Aldric, a missionary bishop who, according to local
                legend, had crossed the moor on foot in the depth of winter. The priory owned the town's
                water mill, several upland sheep farms and the tithes of four parishes, making it the
                largest landowner in the district. When the religious houses were dissolved in 1539 the
                buildings were sold to a wool merchant named Thomas Gale, who pulled down the cloister
                and used the stone for a new house. Only the nave of the church survived, and it has
                served as the parish church of Harrowgate Fell ever since. Its most admired feature is
                the east window, a sheet of medieval glass showing a bishop leading a flock of sheep
                through the snow.
                """,
                ("When was St. Aldric's Priory founded?", "1134"),
                ("From which abbey did the founding canons come?", "Crane Minster"),
                ("Who bought the priory buildings after the religious houses were dissolved?", "Thomas Gale"),
                ("Which part of the priory church survived?", "the nave"),
                ("What does the east window show?", "a bishop leading a flock of sheep through the snow"),
            ),
            para(
                """
                The Wendmoor Valley Railway reached Harrowgate Fell on 2 June 1874, after six years of
                construction that included a 410-metre tunnel beneath Gallow Edge. The line was promoted
                mainly by the owners of the Redscar limestone quarries, who needed a cheaper way to send
                crushed stone to the ironworks on the coast. At its peak in the 1920s the quarry
                employed about 350 men and dispatched three trains of stone each day. Passenger traffic
                was lighter, but excursion trains on summer Sundays could carry up to 1,200 walkers from
                the industrial towns. The quarries closed in 1968 and the passenger service was
                withdrawn two years later. Since 1994 a volunteer society has run heritage steam trains
                over a 7.5-kilometre section of the old line between the town and the hamlet of Low
                Sedding.
                """,
                ("On what date did the railway reach Harrowgate Fell?", "2 June 1874"),
                ("How long is the tunnel beneath Gallow Edge?", "410-metre"),
                ("Who mainly promoted the railway line?", "the owners of the Redscar limestone quarries"),
                ("How many men did the quarry employ at its peak?", "about 350 men"),
                ("In what year did the quarries close?", "1968"),
                ("How long is the section of line used by the heritage trains?", "7.5-kilometre"),
            ),
        ],
    ),
    (
        "Bicycle_gearing",
        [
            para(
                """
                A bicycle's gears let the rider change how far the bicycle travels for each turn of the
                pedals. The pedals drive a toothed wheel called the chainring, and a chain carries that
                motion to a smaller toothed wheel, or sprocket, fixed to the rear hub. The gear ratio is
                found by dividing the number of teeth on the chainring by the number on the sprocket.
                With a 48-tooth chainring and a 16-tooth sprocket, for example, the ratio is 3, so the
                rear wheel turns three times for every full turn of the cranks. A high ratio suits flat
                roads and fast riding, while a low ratio makes climbing easier because each pedal stroke
                needs less force, even though the bicycle moves a shorter distance.
                """,
                ("What is the toothed wheel driven by the pedals called?", ("the chainring", 0)),
                (
                    "What is divided by the number of teeth on the sprocket to give the gear ratio?",
                    "the number of teeth on the chainring",
                ),
                ("What is the gear ratio with a 48-tooth chainring and a 16-tooth sprocket?", "3"),
                ("What kind of riding does a high ratio suit?", "flat roads and fast riding"),
                ("Why does a low ratio make climbing easier?", "each pedal stroke needs less force"),
            ),
            para(
                """
                Most modern road and mountain bicycles change gear with a derailleur, a spring-loaded
                mechanism that pushes the chain sideways from one sprocket to the next while the rider
                keeps pedalling. A rear cassette may carry anywhere from eight to twelve sprockets, and
                many bicycles also have two or three chainrings at the front, giving a wide spread of
                ratios. The derailleur is moved by a steel cable running from a shifter on the
                handlebar. Because the chain must be moving to change position, riders are taught never
                to shift while standing still. An alternative is the hub gear, in which a set of small
                planetary gears is sealed inside the rear hub; hub gears are heavier but need far less
                cleaning and can be changed even when the bicycle is stationary.
                """,
                ("What does a derailleur do?", "pushes the chain sideways from one sprocket to the next"),
                ("How many sprockets may a rear cassette carry?", "eight to twelve"),
                ("What moves the derailleur?", "a steel cable"),
                ("Where are the planetary gears of a hub gear?", "sealed inside the rear hub"),
                ("What is one drawback of hub gears?", "heavier"),
            ),
            para(
                """
                Before the safety bicycle appeared in the 1880s, riders of the high-wheeler had no gears
                at all: the pedals were fixed directly to an enormous front wheel, and the only way to
                go faster on each pedal turn was to build a bigger wheel. Wheels of 1.5 metres across
                were common, which made mounting and falling off equally dramatic. Cyclists in
                English-speaking countries still describe gears in 'gear inches', the diameter of a
                high-wheeler's front wheel that would travel the same distance per pedal turn. A typical
                climbing gear on a touring bicycle is about 25 gear inches, while a sprinter's top gear
                may exceed 110.
                """,
                ("When did the safety bicycle appear?", "the 1880s"),
                ("To what were the pedals of a high-wheeler fixed?", "directly to an enormous front wheel"),
                ("How wide were common high-wheeler wheels?", "1.5 metres"),
                ("In what unit do English-speaking cyclists still describe gears?", ("gear inches", 0)),
                ("What is a typical climbing gear on a touring bicycle?", "about 25 gear inches"),
            ),
        ],
    ),
    (
        "River_Vellan",
        [
            para(
                """
                The Vellan is a river of about 212 kilometres that rises in the Corrandine Hills and
                flows south-west to the sea at the port of Saltmouth. Its source is a peat bog known as
                the Black Cauldron, lying at 640 metres above sea level, from which a chain of small
                pools feeds a fast, stony stream. In its upper course the river falls steeply through a
                narrow gorge called the Throat, where the water drops 30 metres over a series of three
                cascades within less than a kilometre. Below the gorge the valley widens, and the Vellan
                begins to meander across a broad floodplain of meadows and willow carr. Here it is
                joined by its largest tributary, the Ashbrook, which drains the chalk downs to the north
                and carries clear, cold water that noticeably cools the main river in summer. Further
                downstream the towns of Merrow and Kilnford grew up at ancient fording points; Kilnford
                takes its name from the lime kilns that once lined its banks. The lower Vellan is tidal
                for its last 18 kilometres, and at low tide wide mudflats are exposed, feeding tens of
                thousands of wading birds in winter. A stone bridge of nine arches, built at Saltmouth
                in 1703, was for more than a century the lowest crossing point on the river. Today the
                estuary is protected as a nature reserve, and the whole river is known among anglers for
                its sea trout, which run upstream in late summer after the first heavy rains.
                """,
                ("How long is the Vellan?", "about 212 kilometres"),
                ("What is the bog at the river's source called?", "the Black Cauldron"),
                ("How far does the water drop in the Throat?", "30 metres"),
                ("What is the Vellan's largest tributary?", "the Ashbrook"),
                ("Where does Kilnford's name come from?", "the lime kilns that once lined its banks"),
                ("When was the nine-arched bridge at Saltmouth built?", "1703"),
            ),
            para(
                """
                The Vellan has a long record of floods. The worst in living memory came in November
                1958, when three days of continuous rain on already saturated hills sent a surge down
                the valley that submerged the centre of Merrow to a depth of 1.8 metres. More than 400
                homes were damaged and the old timber footbridge at Kilnford was swept away. After an
                inquiry, the river authority built a system of flood walls in Merrow and a large storage
                basin near the village of Hatherby, where water can be held back during heavy rain and
                released slowly once the peak has passed. The scheme was completed in 1967 and has since
                prevented serious flooding in the town on at least five occasions.
                """,
                ("When did the worst flood in living memory happen?", "November 1958"),
                ("How deep was the water in the centre of Merrow?", "1.8 metres"),
                ("What happened to the footbridge at Kilnford?", "swept away"),
                ("Where was the storage basin built?", "near the village of Hatherby"),
                ("In what year was the flood scheme completed?", "1967"),
            ),
            para(
                """
                The clean gravel beds of the upper Vellan are spawning grounds for salmon and sea trout,
                and the river supports one of the region's healthiest populations of otters. Kingfishers
                nest in the soft sandy banks below Merrow, and the reed beds near the estuary hold
                breeding bitterns, whose booming call carries for several kilometres on still spring
                evenings. The rare Vellan pearl mussel, a freshwater mussel that can live for over 80
                years, survives in a few stretches of the middle river. Because its larvae spend their
                first months attached to the gills of young trout, the mussel's survival depends on a
                healthy fish population.
                """,
                ("Which fish spawn in the gravel beds of the upper Vellan?", "salmon and sea trout"),
                ("Where do kingfishers nest?", "in the soft sandy banks below Merrow"),
                ("Which birds breed in the reed beds near the estuary?", "bitterns"),
                ("How long can a Vellan pearl mussel live?", "over 80 years"),
                (
                    "Where do the mussel's larvae spend their first months?",
                    "attached to the gills of young trout",
                ),
            ),
        ],
    ),
    (
        "Bread",
        [
            para(
                """
                Bread is made from flour, water, salt and a raising agent, most often yeast. When flour
                is mixed with water, two proteins in the wheat, glutenin and gliadin, bond together to
                form gluten, a stretchy network that traps gas. Kneading the dough for around ten
                minutes lines up these gluten strands and makes the dough smooth and elastic. Yeast
                feeds on sugars in the flour and releases carbon dioxide, which inflates the gluten
                network like thousands of tiny balloons. The dough is usually left to rise until it has
                roughly doubled in size, a stage bakers call the first proof.
                """,
                ("What are the basic ingredients of bread?", "flour, water, salt and a raising agent"),
                ("Which two wheat proteins form gluten?", "glutenin and gliadin"),
                ("For how long is dough usually kneaded?", "around ten minutes"),
                ("Which gas does yeast release?", "carbon dioxide"),
                ("What do bakers call the stage when the dough has doubled in size?", "the first proof"),
            ),
            para(
                """
                Sourdough bread is leavened not with packaged yeast but with a starter, a paste of flour
                and water colonised by wild yeasts and lactic acid bacteria. A new starter is fed with
                fresh flour and water every day, and after about a week it becomes lively enough to
                raise a loaf. The bacteria produce lactic and acetic acids, which give sourdough its
                tang and help the bread keep longer without going stale. Many bakers give their starters
                names, and some claim that starters have been kept alive in their families for more than
                a century. Because wild yeasts work slowly, a sourdough loaf often takes 24 hours or
                more from mixing to baking.
                """,
                ("What is sourdough bread leavened with?", "a starter"),
                ("Which organisms live in a sourdough starter?", "wild yeasts and lactic acid bacteria"),
                ("How long does a new starter take to become lively enough to raise a loaf?", "about a week"),
                ("Which acids give sourdough its tang?", "lactic and acetic acids"),
                ("How long can a sourdough loaf take from mixing to baking?", "24 hours or more"),
            ),
            para(
                """
                Most loaves are baked in a hot oven at between 200 and 240 °C. In the first minutes the
                trapped gas expands rapidly and the yeast has a final burst of activity, a rise known as
                oven spring. Professional bakers often inject steam into the oven at this stage; the
                moist air keeps the surface soft for longer so that the loaf can expand fully before the
                crust sets. As the surface dries and passes about 150 °C, sugars and proteins react in
                the Maillard reaction, producing the brown colour and much of the flavour of the crust.
                A loaf is usually done when it sounds hollow when tapped underneath or when its centre
                reaches about 96 °C.
                """,
                ("At what temperature are most loaves baked?", "between 200 and 240 °C"),
                ("What is the rise in the first minutes of baking called?", "oven spring"),
                (
                    "Why do professional bakers inject steam into the oven?",
                    "the moist air keeps the surface soft for longer",
                ),
                ("Which reaction gives the crust its brown colour?", "the Maillard reaction"),
                ("What temperature does the centre of a finished loaf reach?", "about 96 °C"),
            ),
        ],
    ),
    (
        "Agnès_Lindqvist",
        [
            para(
                """
                Agnès Lindqvist (1871–1939) was a chemist best known for isolating the rare element she
                named ellerium. She was born in the harbour town of Port Ellery, the youngest of five
                children of a ship's chandler, and taught herself algebra from a borrowed schoolbook. At
                the age of nineteen she won a scholarship to the Royal Polytechnic in Daresford, where
                she was one of only three women admitted that year. Her teacher there, Professor Emil
                Haugen, encouraged her to study the mineral samples that sailors brought back from the
                northern ice fields.
                """,
                ("Which element did Agnès Lindqvist name?", "ellerium"),
                ("Where was Lindqvist born?", "Port Ellery"),
                ("What was her father's trade?", "a ship's chandler"),
                ("How old was Lindqvist when she won her scholarship?", "nineteen"),
                ("Who was her teacher at the Royal Polytechnic?", "Professor Emil Haugen"),
            ),
            para(
                """
                Lindqvist's great discovery grew out of years of patient, repetitive work. In 1898 she
                obtained a crate of dark, heavy ore from the island of Skarv, a mineral the miners there
                called 'blackmeal'. Suspecting that it contained an unknown element, she dissolved the
                ore in acid and began a process of fractional crystallisation, in which a solution is
                repeatedly concentrated so that slightly different salts separate out one after another.
                The method was painfully slow: each cycle took several days, and she later estimated
                that she carried out more than 2,400 crystallisations over four years, working in a
                converted coach house behind her lodgings because the Polytechnic had no laboratory
                space to spare. Her assistant for much of this time was a young glassblower named Zoë
                Ashcombe, who built the fine glass apparatus the work required and kept meticulous
                notebooks of every batch. By the spring of 1902 the two women had isolated a few grams
                of a pale green salt whose spectrum showed a pair of bright violet lines that matched no
                known element. Lindqvist named the new element ellerium, after her birthplace, and
                presented her results to the Daresford Chemical Society in October of that year. The
                announcement was greeted with some suspicion, and it was not until a second laboratory
                confirmed the spectral lines in 1905 that the element was widely accepted. In 1907
                Lindqvist became the first woman to be awarded the society's Halloran Medal, and she
                used the prize money to build a proper laboratory, which she insisted should be open to
                students regardless of sex or income.
                """,
                ("In what year did Lindqvist obtain the ore from Skarv?", "1898"),
                ("What did the miners of Skarv call the ore?", "blackmeal"),
                ("How many crystallisations did Lindqvist estimate she carried out?", "more than 2,400"),
                ("Who was Lindqvist's assistant?", "Zoë Ashcombe"),
                ("What colour were the lines in the new salt's spectrum?", "bright violet"),
                ("Which award did Lindqvist receive in 1907?", "the society's Halloran Medal"),
            ),
            para(
                """
                In later life Lindqvist turned to teaching and wrote a widely used textbook, Elements of
                Patient Chemistry, first published in 1921. She argued that careful record-keeping
                mattered as much as brilliant ideas, and she required her students to copy every
                measurement into ink notebooks that were kept in the laboratory library. She never
                married, and after retiring in 1934 she moved back to Port Ellery, where she spent her
                final years cataloguing the seashells of the local coast. Her collection of some 3,000
                shells is now held by the town museum.
                """,
                ("What was the title of Lindqvist's textbook?", "Elements of Patient Chemistry"),
                ("When was her textbook first published?", "1921"),
                (
                    "What did Lindqvist require her students to do?",
                    "copy every measurement into ink notebooks",
                ),
                ("In what year did Lindqvist retire?", "1934"),
                ("Who holds her shell collection today?", "the town museum"),
            ),
        ],
    ),
    (
        "Weather_front",
        [
            para(
                """
                A weather front is the boundary between two masses of air with different temperatures
                and humidities. When a warm air mass advances and rides up over colder air, it forms a
                warm front. The slope of a warm front is gentle, so the first sign of its approach is
                often high, wispy cirrus cloud appearing a day or more ahead of any rain. As the front
                draws closer the cloud thickens and lowers, and long periods of steady, light rain or
                drizzle follow. After the front passes, temperatures rise and the wind usually veers,
                changing direction in a clockwise sense.
                """,
                ("What is a weather front?", "the boundary between two masses of air"),
                ("What forms when warm air rides up over colder air?", ("a warm front", 0)),
                ("What is often the first sign of an approaching warm front?", "high, wispy cirrus cloud"),
                ("What kind of rain comes as a warm front draws closer?", "steady, light rain or drizzle"),
                ("What does the wind usually do after a warm front passes?", "veers"),
            ),
            para(
                """
                A cold front forms where colder, denser air pushes underneath a warmer air mass and
                forces it upward. Because cold fronts are much steeper than warm fronts, the lifting is
                rapid, and towering cumulonimbus clouds can build in less than an hour. Rain along a
                cold front tends to be short and heavy, sometimes accompanied by hail, thunder and
                sudden squalls. Once the front has passed, the air feels fresher, visibility improves
                and bright spells alternate with scattered showers. Forecasters draw cold fronts on
                weather maps as blue lines with triangles, while warm fronts are shown as red lines with
                semicircles.
                """,
                ("What happens to the warm air at a cold front?", "forces it upward"),
                ("Which clouds can build along a cold front?", "towering cumulonimbus clouds"),
                ("How quickly can those clouds build?", "in less than an hour"),
                ("How are cold fronts drawn on weather maps?", "as blue lines with triangles"),
                ("How are warm fronts shown on weather maps?", "as red lines with semicircles"),
            ),
            para(
                """
                An occluded front forms when a faster-moving cold front catches up with a warm front and
                lifts the warm air completely off the ground. Occlusions usually mark the later stages
                of a depression, the low-pressure system around which the fronts are wrapped. In the
                northern hemisphere air circulates anticlockwise around a depression, and the deepest
                lows can bring gales of more than 90 kilometres per hour. A typical depression crossing
                the ocean lasts from three to seven days before it fills and dies away.
                """,
                (
                    "What catches up with a warm front to form an occluded front?",
                    "a faster-moving cold front",
                ),
                ("What is a depression?", "the low-pressure system around which the fronts are wrapped"),
                (
                    "Which way does air circulate around a depression in the northern hemisphere?",
                    "anticlockwise",
                ),
                ("How strong can the gales from the deepest lows be?", "more than 90 kilometres per hour"),
                ("How long does a typical depression last?", "from three to seven days"),
            ),
        ],
    ),
    (
        "Northmoor_and_Coastal_Railway",
        [
            para(
                """
                The Northmoor and Coastal Railway opened in 1851 to link the mill towns of the Northmoor
                plateau with the harbour at Greyhaven. Its engineer, Mariana Coutts, chose a ruling
                gradient of 1 in 80 so that heavily laden coal trains could climb from the coast without
                needing extra locomotives. The most famous structure on the line is the Skelder Viaduct,
                a curving bridge of 24 brick arches that carries the tracks 38 metres above the River
                Skelder. About 2.6 million bricks were used in its construction, many of them made in
                temporary kilns beside the site.
                """,
                ("When did the Northmoor and Coastal Railway open?", "1851"),
                ("Who was the railway's engineer?", "Mariana Coutts"),
                ("What ruling gradient did the engineer choose?", "1 in 80"),
                ("How many arches does the Skelder Viaduct have?", "24"),
                ("How many bricks were used to build the viaduct?", "About 2.6 million"),
            ),
            para(
                """
                For its first seventy years the railway was worked entirely by steam locomotives, most
                of them built at the company's own works in Thornby. The best-known class was the
                Moorland 4-6-0, introduced in 1912, of which 46 examples were built; the last survivor,
                number 1187, is preserved in working order. Steam gave way to diesel traction in the
                1950s, and in 1983 the line between Thornby and Greyhaven was electrified using overhead
                wires at 25,000 volts. The change cut the journey time for the 64-kilometre trip from 95
                minutes to 52 minutes.
                """,
                (
                    "Where were most of the railway's steam locomotives built?",
                    "the company's own works in Thornby",
                ),
                ("How many Moorland 4-6-0 locomotives were built?", "46"),
                ("What is the number of the preserved Moorland locomotive?", "1187"),
                ("At what voltage are the overhead wires supplied?", "25,000 volts"),
                ("How long has the journey taken since electrification?", "52 minutes"),
            ),
            para(
                """
                Railways keep trains apart by dividing the line into sections called blocks, and only
                one train is allowed in each block at a time. In the early days, signalmen in trackside
                boxes communicated by bell codes sent along a telegraph wire, and moved semaphore signal
                arms with long iron levers. A horizontal arm meant stop, while an arm lowered or raised
                at an angle meant the line ahead was clear. Modern lines use coloured light signals
                controlled from large signalling centres, where a handful of staff can supervise
                hundreds of kilometres of track.
                """,
                ("What are the sections of a railway line called?", "blocks"),
                ("How did early signalmen communicate?", "by bell codes sent along a telegraph wire"),
                ("What did a horizontal semaphore arm mean?", "stop"),
                ("What do modern lines use instead of semaphore arms?", "coloured light signals"),
                (
                    "How much track can the staff of a signalling centre supervise?",
                    "hundreds of kilometres of track",
                ),
            ),
        ],
    ),
    (
        "Honeybee",
        [
            para(
                """
                A honeybee colony in summer may contain 40,000 to 60,000 bees, almost all of them female
                workers. The colony has a single queen, whose main task is to lay eggs, up to 1,500 of
                them a day at the height of the season. Males, called drones, do not collect food or
                sting; their only role is to mate with young queens from other colonies. Workers change
                jobs as they age: young bees clean cells and feed larvae, middle-aged bees build comb
                and guard the entrance, and the oldest bees fly out to forage for nectar and pollen.
                """,
                ("How many bees may a colony contain in summer?", "40,000 to 60,000"),
                ("How many eggs can a queen lay in a day?", "up to 1,500"),
                ("What are male honeybees called?", "drones"),
                ("What is the only role of the drones?", "to mate with young queens from other colonies"),
                ("What do the oldest worker bees do?", "fly out to forage for nectar and pollen"),
            ),
            para(
                """
                Foraging bees share the location of good flowers through a movement known as the waggle
                dance. A returning bee runs in a straight line on the vertical comb while shaking her
                abdomen, then loops back and repeats the run. The angle of the straight run relative to
                vertical shows the direction of the food relative to the sun, and the length of the
                waggle indicates the distance, with roughly one second of waggling representing about a
                kilometre. Bees that follow the dance closely can then fly directly to a patch of
                flowers they have never visited.
                """,
                (
                    "What is the movement bees use to share the location of flowers called?",
                    "the waggle dance",
                ),
                ("On what surface does the dancing bee perform?", "the vertical comb"),
                (
                    "What does the angle of the straight run show?",
                    "the direction of the food relative to the sun",
                ),
                ("What does the length of the waggle indicate?", "the distance"),
                ("What distance does about one second of waggling represent?", "about a kilometre"),
            ),
            para(
                """
                Honey begins as nectar, a watery sugar solution that bees collect from flowers and carry
                home in a special honey stomach. In the hive, workers pass the nectar from mouth to
                mouth, adding enzymes that split its sucrose into simpler sugars. They then spread it in
                open cells and fan their wings to evaporate the water until the moisture content falls
                below about 18 per cent. Finally the cells are sealed with a cap of wax. To produce a
                single kilogram of honey, the bees of a colony may together fly a distance equal to
                several times around the Earth.
                """,
                ("In what do bees carry nectar home?", "a special honey stomach"),
                ("What do the enzymes added by the workers do?", "split its sucrose into simpler sugars"),
                ("How do bees evaporate water from the nectar?", "fan their wings"),
                ("Below what moisture content must the honey fall?", "about 18 per cent"),
                ("What are the finished cells sealed with?", "a cap of wax"),
            ),
        ],
    ),
    (
        "Night_of_a_Thousand_Lanterns",
        [
            para(
                """
                The Night of a Thousand Lanterns is held each year in the lakeside town of Osk on the
                first Saturday after the autumn equinox. Its origins are traced to 1642, when, according
                to the town chronicle, a fleet of fishing boats was caught by a sudden storm on Lake
                Mirren and the families on shore lit lamps along the jetty to guide them home. All but
                one of the boats returned safely, and the townspeople vowed to light the shore every
                year in thanks. For two centuries the custom remained small, with each household setting
                a single oil lamp on its doorstep. The festival took its modern form in 1889, when the
                schoolmaster Henrik Solvang persuaded the children of the town to make paper lanterns
                and float them on the lake on small wooden rafts. The floating lanterns proved so
                popular that by the 1920s visitors were arriving by special steamer from the capital.
                Today preparations begin weeks in advance: every primary school class designs a lantern
                on a chosen theme, and the largest, built by the Osk Guild of Carpenters, can be more
                than four metres tall and is carried through the streets by sixteen bearers. The evening
                opens with the ringing of the harbour bell at dusk, followed by a procession to the
                water's edge, where the mayor lights the first lantern from a flame kept burning in the
                old customs house. Since 2011 the festival committee has required all floating lanterns
                to be made of biodegradable materials, and volunteers in rowing boats collect the
                remains the following morning. The event now attracts around 25,000 visitors, more than
                five times the population of the town.
                """,
                (
                    "When is the Night of a Thousand Lanterns held?",
                    "on the first Saturday after the autumn equinox",
                ),
                ("On which lake was the fishing fleet caught by the storm?", "Lake Mirren"),
                ("Who persuaded the town's children to make paper lanterns?", "Henrik Solvang"),
                ("How tall can the lantern built by the Guild of Carpenters be?", "more than four metres"),
                (
                    "From what does the mayor light the first lantern?",
                    "a flame kept burning in the old customs house",
                ),
                ("How many visitors does the festival attract?", "around 25,000"),
            ),
            para(
                """
                Food plays a central part in the festival. Stalls along the promenade sell grilled lake
                perch, rye pancakes with cloudberry jam and a spiced apple drink called glöd, which is
                served hot from copper kettles. Bakers in Osk make a special crescent-shaped loaf, the
                lantern bun, flavoured with cardamom and decorated with a single almond to represent a
                flame. By tradition, the first bun from each batch is set aside for the lake, and it is
                crumbled into the water before the lanterns are launched.
                """,
                ("Which fish is sold grilled at the festival stalls?", "lake perch"),
                ("What is the festival's spiced apple drink called?", "glöd"),
                ("What spice flavours the lantern bun?", "cardamom"),
                ("What does the almond on a lantern bun represent?", "a flame"),
                ("What is done with the first bun from each batch?", "crumbled into the water"),
            ),
            para(
                """
                In 1998 the festival gained a music competition, the Lantern Song Prize, for new songs
                about the lake. Entries are performed on a floating stage moored fifty metres from the
                shore, and the winner is chosen by the audience, who vote by raising coloured lanterns.
                The prize itself is modest: a silver lantern brooch and 2,000 crowns. Several winning
                songs, including the 2004 entry 'Mirren Blue' by the duo Kaja & Tor, have become popular
                well beyond the region.
                """,
                ("When was the Lantern Song Prize introduced?", "1998"),
                (
                    "Where are the competition entries performed?",
                    "on a floating stage moored fifty metres from the shore",
                ),
                ("How does the audience vote for the winner?", "by raising coloured lanterns"),
                ("How much money does the winner receive?", "2,000 crowns"),
                ("Who performed 'Mirren Blue'?", "Kaja & Tor"),
            ),
        ],
    ),
    (
        "Chess_opening",
        [
            para(
                """
                The opening is the first phase of a chess game, usually taken to cover roughly the first
                ten to fifteen moves. During this phase each player tries to bring the knights and
                bishops into play, place pawns in the centre and move the king to safety, usually by
                castling. Controlling the four central squares matters because pieces placed there can
                reach more of the board. A common piece of advice for beginners is to avoid moving the
                same piece twice in the opening unless there is a clear reason.
                """,
                ("How many moves does the opening usually cover?", "roughly the first ten to fifteen moves"),
                ("How is the king usually moved to safety?", "by castling"),
                (
                    "Why does controlling the central squares matter?",
                    "pieces placed there can reach more of the board",
                ),
                ("How many central squares are there?", "four"),
                (
                    "What are beginners commonly advised to avoid?",
                    "moving the same piece twice in the opening",
                ),
            ),
            para(
                """
                Openings are broadly divided according to White's first move. Games beginning with the
                king's pawn advanced two squares are called open games when Black replies symmetrically,
                and they tend to lead to quick piece play and direct attacks. Games beginning with the
                queen's pawn often lead to closed positions, in which pawn chains lock together and the
                struggle is more strategic. Players also speak of gambits, openings in which one side
                offers a pawn, or occasionally more, in return for faster development or an attack.
                Accepting a gambit means taking the material, while declining it means ignoring the
                offer and continuing to develop.
                """,
                ("According to what are openings broadly divided?", "White's first move"),
                ("What are king's pawn games called when Black replies symmetrically?", "open games"),
                ("What do games beginning with the queen's pawn often lead to?", "closed positions"),
                ("What does a player offering a gambit hope to gain?", "faster development or an attack"),
                ("What does declining a gambit mean?", "ignoring the offer and continuing to develop"),
            ),
            para(
                """
                Opening theory, the accumulated body of analysed move sequences, has grown enormously
                since printed chess books became common in the nineteenth century. Modern reference
                works list tens of thousands of variations, and top players prepare specific lines for
                individual opponents with the help of computer engines. Many coaches, however, warn club
                players against memorising long sequences without understanding them, arguing that a
                player who knows the ideas behind an opening will cope better when an opponent leaves
                the familiar path.
                """,
                ("What is opening theory?", "the accumulated body of analysed move sequences"),
                ("When did printed chess books become common?", "the nineteenth century"),
                ("How many variations do modern reference works list?", "tens of thousands"),
                ("What do top players use to help prepare their lines?", "computer engines"),
                (
                    "What do many coaches warn club players against?",
                    "memorising long sequences without understanding them",
                ),
            ),
        ],
    ),
    (
        "Café_Lumière",
        [
            para(
                """
                Café Lumière is a coffee house on the Quai des Tanneurs in the river city of Valmonde.
                It was opened in 1896 by Léonie Bastide, the widow of a lamp-maker, who hung the walls
                with her late husband's brass lamps and gave the café its name. Within a few years it
                had become a meeting place for painters, journalists and students from the nearby School
                of Fine Arts, who could sit for hours over a single cup.
                """,
                ("On which street is Café Lumière?", "the Quai des Tanneurs"),
                ("When did Café Lumière open?", "1896"),
                ("Who opened Café Lumière?", "Léonie Bastide"),
                ("What did the founder hang on the walls?", "her late husband's brass lamps"),
                ("Who met at the café in its early years?", "painters, journalists and students"),
            ),
            para(
                """
                The café's best-known regular was the poet Aurélien Roux, who wrote most of his
                collection Small Hours at the corner table by the window between 1911 and 1914. A brass
                plaque now marks the spot. During the occupation of Valmonde the café stayed open, and
                its cellar was used to hide a printing press on which a clandestine newspaper, Le
                Réverbère, was produced. The press was discovered in 1943 and the café was closed for
                eleven months.
                """,
                ("Which poet was the café's best-known regular?", "Aurélien Roux"),
                ("Which collection did the poet write at the café?", "Small Hours"),
                ("What marks the poet's table today?", "A brass plaque"),
                ("What was the clandestine newspaper called?", "Le Réverbère"),
                ("For how long was the café closed after the press was discovered?", "eleven months"),
            ),
            para(
                """
                Today Café Lumière is run by the fourth generation of the Bastide family and serves
                about 800 customers on a busy day. Its signature drink is the café noisette lumière, an
                espresso with a spoonful of hazelnut cream, and its kitchen is known for a thin apple
                tart baked to a recipe said to date from the café's opening. The original zinc counter,
                9.5 metres long, was restored in 2016. In 2021 the café was listed as a historic
                monument, protecting its interior from alteration.
                """,
                ("Who runs Café Lumière today?", "the fourth generation of the Bastide family"),
                ("How many customers does the café serve on a busy day?", "about 800"),
                ("What is the café noisette lumière?", "an espresso with a spoonful of hazelnut cream"),
                ("How long is the zinc counter?", "9.5 metres"),
                ("When was the café listed as a historic monument?", "2021"),
            ),
        ],
    ),
    (
        "Lighthouse",
        [
            para(
                """
                A lighthouse is a tower that carries a powerful light to warn ships of dangerous coasts,
                reefs and harbour entrances. Each lighthouse has its own pattern of flashes, called its
                character, so that a navigator at night can tell one light from another; a light might,
                for example, show two white flashes every ten seconds. By day, lighthouses are
                recognised by their shape and colour, and many are painted with bold bands or stripes
                known as daymarks.
                """,
                ("What does a lighthouse warn ships of?", "dangerous coasts, reefs and harbour entrances"),
                ("What is a lighthouse's pattern of flashes called?", "its character"),
                ("What example of a flash pattern is given?", "two white flashes every ten seconds"),
                ("How are lighthouses recognised by day?", "by their shape and colour"),
                ("What are the painted bands on lighthouses called?", "daymarks"),
            ),
            para(
                """
                Early lighthouses burned wood or coal in open braziers, and later candles and oil lamps
                were used, but much of their light was wasted. The breakthrough came with the Fresnel
                lens, developed in the 1820s, which uses rings of glass prisms arranged around a central
                lens to bend the light into a narrow horizontal beam. A large Fresnel lens could make a
                single lamp visible more than 30 kilometres out to sea. Because the lens was built from
                many thin sections rather than one thick piece of glass, it was far lighter and cheaper
                than a conventional lens of the same size.
                """,
                ("What did early lighthouses burn?", "wood or coal"),
                ("When was the Fresnel lens developed?", "the 1820s"),
                ("What are the rings of a Fresnel lens made of?", "glass prisms"),
                (
                    "How far out to sea could a large Fresnel lens make a lamp visible?",
                    "more than 30 kilometres",
                ),
                ("Why was a Fresnel lens lighter than a conventional lens?", "built from many thin sections"),
            ),
            para(
                """
                For most of their history lighthouses were staffed by keepers, who trimmed the wicks,
                wound the clockwork that turned the lens and kept watch through the night. Keepers on
                remote rock stations often worked in teams of three, spending several weeks at a time on
                the tower before being relieved by boat. During the twentieth century most lights were
                converted to electricity and then automated, and the last keepers were withdrawn from
                many countries' lighthouses by the 1990s. Some former keepers' cottages are now let to
                holidaymakers.
                """,
                ("What turned the lens of a staffed lighthouse?", "the clockwork"),
                ("In teams of how many did keepers on rock stations work?", "three"),
                ("How were keepers on rock stations relieved?", "by boat"),
                ("By when had the last keepers been withdrawn in many countries?", "the 1990s"),
                ("What are some former keepers' cottages used for now?", "let to holidaymakers"),
            ),
        ],
    ),
    (
        "Volcano",
        [
            para(
                """
                A volcano is an opening in the Earth's crust through which molten rock, gas and ash
                escape. Molten rock below the surface is called magma; once it reaches the surface it is
                called lava. Most volcanoes lie along the edges of tectonic plates, either where plates
                pull apart, as along mid-ocean ridges, or where one plate sinks beneath another. A
                smaller number, such as those that form chains of islands in the middle of oceans, sit
                above hot spots, plumes of unusually hot rock rising from deep in the mantle.
                """,
                ("What is molten rock below the surface called?", "magma"),
                ("What is molten rock called once it reaches the surface?", "lava"),
                ("Where do most volcanoes lie?", "along the edges of tectonic plates"),
                ("Where do plates pull apart?", "along mid-ocean ridges"),
                ("What are hot spots?", "plumes of unusually hot rock"),
            ),
            para(
                """
                The style of an eruption depends largely on how runny the magma is and how much gas it
                contains. Basalt magma is hot and fluid, so gas escapes easily and eruptions tend to be
                gentle, producing rivers of lava that can flow for tens of kilometres. Magma rich in
                silica is thick and sticky; gas becomes trapped until the pressure is released in a
                violent explosion that can hurl ash many kilometres into the sky. The most dangerous
                hazard of such eruptions is often the pyroclastic flow, an avalanche of hot gas and rock
                fragments that can race down a slope at more than 100 kilometres per hour.
                """,
                (
                    "What does the style of an eruption depend on?",
                    "how runny the magma is and how much gas it contains",
                ),
                ("Which magma is hot and fluid?", "Basalt magma"),
                ("What kind of magma is thick and sticky?", "Magma rich in silica"),
                ("What is a pyroclastic flow?", "an avalanche of hot gas and rock fragments"),
                ("How fast can a pyroclastic flow move?", "more than 100 kilometres per hour"),
            ),
            para(
                """
                Scientists cannot yet predict eruptions precisely, but they watch active volcanoes for
                warning signs. Swarms of small earthquakes may show magma forcing its way upward, and
                sensitive instruments can detect the ground swelling by a few centimetres as a magma
                chamber fills. Changes in the gases escaping from vents, particularly a rise in sulphur
                dioxide, are another clue. Volcanoes are classed as active, dormant or extinct, though
                the distinction between dormant and extinct can be uncertain for volcanoes that erupt
                only once in many thousands of years.
                """,
                ("What do scientists watch active volcanoes for?", "warning signs"),
                ("What may swarms of small earthquakes show?", "magma forcing its way upward"),
                ("By how much can the ground swell as a magma chamber fills?", "a few centimetres"),
                ("A rise in which gas is a warning clue?", "sulphur dioxide"),
                ("How are volcanoes classed?", "active, dormant or extinct"),
            ),
        ],
    ),
    (
        "Ashdown_&_Pryce",
        [
            para(
                """
                Ashdown & Pryce was a firm of clockmakers founded in 1786 in the cathedral town of
                Wexcombe by Samuel Ashdown, a former apprentice watch-finisher, and his brother-in-law
                Jonah Pryce, who supplied the capital. In its early decades the firm made long-case
                clocks for farmhouses and merchants' homes, each with a painted dial showing the phases
                of the moon, which country customers valued for planning journeys on unlit roads. The
                business grew rapidly after 1840, when the railway companies began to demand accurate
                clocks for their stations; because every town had previously kept its own local time,
                the introduction of a single railway time meant that hundreds of new clocks had to be
                installed and regularly checked. Ashdown & Pryce won contracts with three major railway
                companies and, at its height around 1890, employed some 420 workers in a five-storey
                factory beside the canal. The firm's most celebrated work is the great clock of Wexcombe
                Town Hall, completed in 1868, which has four dials each 3.2 metres across and a bell,
                known locally as Old Sam, weighing just over two tonnes. The mechanism was designed by
                Eliza Pryce, Jonah's granddaughter, who introduced a double three-legged escapement that
                kept the clock accurate to within a second a week despite wind pressure on the hands.
                Competition from cheaper factory-made clocks from abroad weakened the firm in the early
                twentieth century, and it closed in 1931. Its canal-side factory has since been
                converted into apartments, while the town hall clock is still wound by hand every
                Tuesday by volunteers.
                """,
                ("When was Ashdown & Pryce founded?", "1786"),
                ("Who supplied the capital for the firm?", "Jonah Pryce"),
                (
                    "What did country customers use the moon-phase dials for?",
                    "planning journeys on unlit roads",
                ),
                ("How many workers did the firm employ around 1890?", "some 420 workers"),
                ("What is the town hall bell known as locally?", "Old Sam"),
                ("Who designed the mechanism of the town hall clock?", "Eliza Pryce"),
            ),
            para(
                """
                A mechanical clock has four essential parts: a power source, a gear train, an escapement
                and a regulator. In weight-driven clocks the power comes from a heavy weight slowly
                descending on a cord, while smaller clocks use a coiled mainspring. The escapement
                releases the gear train in small, equal steps, producing the familiar tick, and the
                regulator, usually a pendulum or a balance wheel, sets the pace of those steps. A
                pendulum about 99.4 centimetres long swings once every second, which is why many
                long-case clocks are tall enough to house one.
                """,
                (
                    "What are the four essential parts of a mechanical clock?",
                    "a power source, a gear train, an escapement and a regulator",
                ),
                ("What powers smaller clocks?", "a coiled mainspring"),
                ("What does the escapement do?", "releases the gear train in small, equal steps"),
                ("What is the regulator of a clock usually?", "a pendulum or a balance wheel"),
                ("How long is a pendulum that swings once every second?", "about 99.4 centimetres"),
            ),
            para(
                """
                The Wexcombe Clock Museum, opened in 1979 in the former counting house of Ashdown &
                Pryce, holds more than 600 timepieces, including 140 clocks made by the firm. Its prize
                exhibit is a table clock made in 1801 for the Bishop of Wexcombe, which plays one of
                seven tunes on a set of small bells every hour. The museum also runs evening classes in
                clock repair, and each December it hosts a 'silent hour' in which every clock in the
                building is stopped so that visitors can hear how quiet the rooms become.
                """,
                ("When did the Wexcombe Clock Museum open?", "1979"),
                ("How many timepieces does the museum hold?", "more than 600"),
                ("For whom was the museum's prize table clock made?", "the Bishop of Wexcombe"),
                ("How many tunes can the table clock play?", "seven"),
                ("What happens during the museum's 'silent hour'?", "every clock in the building is stopped"),
            ),
        ],
    ),
    (
        "Tide",
        [
            para(
                """
                Tides are the regular rise and fall of the sea caused mainly by the gravitational pull
                of the Moon, with a smaller contribution from the Sun. The Moon pulls most strongly on
                the side of the Earth facing it, raising a bulge of water, and a second bulge forms on
                the opposite side. As the Earth rotates through both bulges, most coasts experience two
                high tides and two low tides roughly every 24 hours and 50 minutes. The extra 50 minutes
                arise because the Moon moves along its orbit while the Earth turns.
                """,
                ("What mainly causes the tides?", "the gravitational pull of the Moon"),
                ("Which body makes a smaller contribution to the tides?", "the Sun"),
                ("Where does the second bulge of water form?", "on the opposite side"),
                ("How often do most coasts get two high tides?", "roughly every 24 hours and 50 minutes"),
                (
                    "Why is the tidal cycle 50 minutes longer than a day?",
                    "the Moon moves along its orbit while the Earth turns",
                ),
            ),
            para(
                """
                When the Sun, Moon and Earth line up, at new moon and full moon, their pulls combine to
                produce spring tides, with unusually high high-waters and low low-waters. The name has
                nothing to do with the season; it refers to the water 'springing' up. About a week
                later, when the Sun and Moon pull at right angles, the tidal range is smallest, giving
                neap tides. The difference can be large: in some bays the range at spring tides is more
                than twice that at neaps.
                """,
                ("When do spring tides occur?", "at new moon and full moon"),
                ("What does the name 'spring tide' refer to?", "the water 'springing' up"),
                ("What are the tides with the smallest range called?", "neap tides"),
                ("How long after spring tides do neap tides come?", "About a week"),
                ("How do the Sun and Moon pull at the time of neap tides?", "at right angles"),
            ),
            para(
                """
                The shape of a coastline strongly affects how large the tides are. In the open ocean the
                tidal range is often less than a metre, but in long funnel-shaped bays the water piles
                up as it is squeezed between narrowing shores. In a few such places the range exceeds 15
                metres. In some rivers, a rising tide arrives as a single wave called a tidal bore,
                which can travel many kilometres inland and is popular with surfers. Tide tables,
                published for ports around the world, let sailors, anglers and walkers plan safely
                around the times of high and low water.
                """,
                ("How large is the tidal range in the open ocean?", "often less than a metre"),
                ("Where does the water pile up?", "in long funnel-shaped bays"),
                ("How large can the tidal range be in a few places?", "exceeds 15 metres"),
                ("What is a tidal bore?", "a single wave"),
                ("Who uses tide tables?", "sailors, anglers and walkers"),
            ),
        ],
    ),
    (
        "Paper",
        [
            para(
                """
                Paper is a thin sheet made from plant fibres that have been broken down in water and
                then matted together. According to Chinese records, the process was improved by the
                court official Cai Lun around the year 105, who used mulberry bark, hemp and old fishing
                nets. The craft spread slowly westward, reaching the Islamic world in the eighth century
                and Europe several centuries later, where paper gradually replaced parchment made from
                animal skin.
                """,
                ("What is paper made from?", "plant fibres"),
                ("Which court official improved the process of making paper?", "Cai Lun"),
                ("Around which year was the process improved?", "105"),
                ("Which materials did the official use?", "mulberry bark, hemp and old fishing nets"),
                ("What did paper replace in Europe?", "parchment made from animal skin"),
            ),
            para(
                """
                In traditional hand paper-making, a vat is filled with a thin pulp of fibres suspended
                in water. The papermaker dips a mould, a wooden frame covered with fine wire mesh, into
                the vat and lifts it out level, shaking it gently so the fibres interlock as the water
                drains away. The wet sheet is then turned out onto a felt in a step called couching. A
                stack of sheets and felts, known as a post, is squeezed in a press, and the sheets are
                hung to dry, often for several days.
                """,
                ("What is a papermaker's mould?", "a wooden frame covered with fine wire mesh"),
                (
                    "Why does the papermaker shake the mould?",
                    "so the fibres interlock as the water drains away",
                ),
                ("What is the step of turning the wet sheet onto a felt called?", "couching"),
                ("What is a stack of sheets and felts called?", "a post"),
                ("For how long are the sheets often hung to dry?", "several days"),
            ),
            para(
                """
                Most paper today is made from wood pulp on huge machines, the descendants of a design
                patented in 1799 that formed a continuous sheet on a moving wire belt. A modern machine
                can be more than 100 metres long and produce paper at speeds of over 1,800 metres per
                minute. Recycling has become an important source of fibre, although each time paper is
                recycled its fibres become shorter and weaker, so they can usually be reused only five
                to seven times.
                """,
                ("What is most paper made from today?", "wood pulp"),
                ("When was the first continuous-sheet machine patented?", "1799"),
                ("How long can a modern paper machine be?", "more than 100 metres"),
                ("How fast can a modern machine produce paper?", "over 1,800 metres per minute"),
                ("How many times can paper fibres usually be reused?", "five to seven times"),
            ),
        ],
    ),
    (
        "Tavora",
        [
            para(
                """
                Tavora is a volcanic island of about 86 square kilometres lying in a warm southern
                ocean, some 340 kilometres from the nearest mainland. Its interior is dominated by Mount
                Ressa, a dormant cone that rises to 1,412 metres and is capped by cloud for much of the
                day. The windward north-eastern slopes receive heavy rain and are covered in dense cloud
                forest, while the leeward south-west is dry, with grassland, cactus scrub and low thorny
                trees. The island was uninhabited when it was first sighted by the navigator Tomás
                Ferreira da Luz in 1521, who named it after the saint on whose day it was seen, but
                permanent settlement did not begin until 1688, when a group of farmers arrived from the
                mainland with goats, vines and sugar cane. The settlers built terraces on the lower
                slopes and channelled water from the mountain through a network of stone aqueducts known
                as levadas, some of which are still in use. During the nineteenth century Tavora became
                a coaling station for steamships, and its harbour town, Porto Ressa, grew to about 9,000
                people. Today the island's population is around 14,500, and tourism, fishing and the
                export of a sweet fortified wine are the main sources of income. Tavora is also known
                for its wildlife: the island has at least 23 species of plants found nowhere else, as
                well as the Tavora pigeon, a large grey-blue bird that feeds on the fruit of laurel
                trees and was thought to be extinct until a small population was rediscovered in 1979.
                """,
                ("How far is Tavora from the nearest mainland?", "some 340 kilometres"),
                ("How high is Mount Ressa?", "1,412 metres"),
                ("Who first sighted Tavora?", "Tomás Ferreira da Luz"),
                ("When did permanent settlement of the island begin?", "1688"),
                ("What are the stone aqueducts of Tavora called?", "levadas"),
                ("When was the Tavora pigeon rediscovered?", "1979"),
            ),
            para(
                """
                The cuisine of Tavora blends the farming traditions of its first settlers with the
                produce of the sea. The best-known dish is caldeirada de ressa, a stew of fish, potatoes
                and peppers cooked slowly in a clay pot. Bread is baked in wood-fired ovens shared by
                several households, and on feast days families prepare pão de pedra, a flat round loaf
                cooked on a hot stone and spread with garlic butter. The island's fortified wine, aged
                in oak casks in the warm lofts of Porto Ressa, is traditionally served with dessert.
                """,
                ("What is caldeirada de ressa?", "a stew of fish, potatoes and peppers"),
                ("In what is the stew cooked?", "a clay pot"),
                ("Where is bread baked on Tavora?", "in wood-fired ovens shared by several households"),
                ("What is pão de pedra cooked on?", "a hot stone"),
                ("In what is the island's fortified wine aged?", "oak casks"),
            ),
            para(
                """
                Tavora's only airport opened in 1987 on a strip of flat land reclaimed from the sea near
                Porto Ressa; its runway, at 1,750 metres, is too short for the largest jets. Most
                visitors still arrive by the ferry from the mainland, which makes the crossing three
                times a week and takes around fourteen hours. The island has about 120 kilometres of
                surfaced road, much of it steep and winding, and a popular walking route follows the old
                levadas through the cloud forest to a waterfall called the Bride's Veil.
                """,
                ("When did Tavora's airport open?", "1987"),
                ("How long is the airport's runway?", "1,750 metres"),
                ("How often does the ferry make the crossing?", "three times a week"),
                ("How long does the ferry crossing take?", "around fourteen hours"),
                ("What is the waterfall at the end of the walking route called?", "the Bride's Veil"),
            ),
        ],
    ),
    (
        "Compost",
        [
            para(
                """
                Composting is the controlled breakdown of organic waste, such as vegetable peelings,
                grass cuttings and fallen leaves, into a dark, crumbly material that improves soil. The
                work is done by bacteria, fungi and small animals such as worms, woodlice and mites. A
                good compost heap needs a mixture of nitrogen-rich 'green' materials and carbon-rich
                'brown' materials, often in a ratio of roughly one part green to two or three parts
                brown by volume. It also needs air and moisture: a heap should feel about as damp as a
                wrung-out sponge.
                """,
                (
                    "What does composting turn organic waste into?",
                    "a dark, crumbly material that improves soil",
                ),
                ("Which organisms do the work of composting?", "bacteria, fungi and small animals"),
                ("What are 'green' materials rich in?", "nitrogen"),
                (
                    "What ratio of green to brown materials is suggested?",
                    "roughly one part green to two or three parts brown",
                ),
                ("How damp should a compost heap feel?", "about as damp as a wrung-out sponge"),
            ),
            para(
                """
                A well-built heap heats up quickly as bacteria multiply, and its centre can reach 60 °C
                or more within a few days. These high temperatures kill many weed seeds and disease
                organisms. Turning the heap every week or two mixes in fresh air and keeps the process
                going; a heap that is never turned still rots, but much more slowly. Depending on the
                materials and the care taken, compost can be ready in anywhere from two months to a
                year.
                """,
                ("How hot can the centre of a compost heap get?", "60 °C or more"),
                ("What do the high temperatures kill?", "many weed seeds and disease organisms"),
                ("How often should a heap be turned?", "every week or two"),
                ("What happens to a heap that is never turned?", "still rots, but much more slowly"),
                ("How long can compost take to be ready?", "from two months to a year"),
            ),
            para(
                """
                Some materials are best kept out of a home compost heap. Meat, fish and dairy products
                can attract rats and produce strong smells, while diseased plants and the roots of
                persistent weeds may survive the process and spread. Glossy magazines and coal ash are
                also unsuitable. Gardeners without space for a heap often use a wormery, a closed bin in
                which brandling worms turn kitchen scraps into a rich compost and a liquid that can be
                diluted as plant food.
                """,
                (
                    "Why should meat, fish and dairy products be kept out of a heap?",
                    "can attract rats and produce strong smells",
                ),
                ("Which non-food items are unsuitable for a heap?", "Glossy magazines and coal ash"),
                ("What is a wormery?", "a closed bin"),
                ("Which worms are used in a wormery?", "brandling worms"),
                ("What can the liquid from a wormery be used as?", "plant food"),
            ),
        ],
    ),
    (
        "Zoë_Adeyemi-Laurent",
        [
            para(
                """
                Zoë Adeyemi-Laurent (born 1964) is a composer and conductor known for large choral works
                that combine orchestral writing with field recordings of natural sound. She grew up in
                the river port of Valmonde, the daughter of a Nigerian-born engineer and a
                French-speaking piano teacher, and began writing music at the age of eight. After
                studying at the Valmonde Conservatoire she spent two years in a coastal village
                recording the sounds of waves, gulls and the wind in telegraph wires, an experience she
                later described as 'learning to listen before learning to write'.
                """,
                ("When was Zoë Adeyemi-Laurent born?", "1964"),
                ("What kind of works is she known for?", "large choral works"),
                ("At what age did she begin writing music?", "eight"),
                ("Where did she study music?", "the Valmonde Conservatoire"),
                ("What was her mother's profession?", "piano teacher"),
            ),
            para(
                """
                Her breakthrough came in 1993 with Tidewater, a 70-minute cantata for choir, orchestra
                and recorded sea, first performed in the cathedral of Saint-Rémy by the Valmonde
                Philharmonic under her own direction. The work is built around a recording of a single
                tide, made over twelve hours and thirteen minutes on a shingle beach, which is slowed
                down and played through loudspeakers placed around the audience. The choir enters only
                after nearly ten minutes of recorded sound, singing fragments of old fishermen's prayers
                collected from parish archives along the coast. Critics were divided at first; one
                reviewer complained that the orchestra seemed to be 'waiting politely for the weather',
                but audiences responded warmly, and the recording sold more than 150,000 copies, an
                unusual figure for a contemporary choral work. Adeyemi-Laurent followed it with Orchard
                (1998), for children's choir and the recorded sound of bees, and Iron Roads (2001), a
                commission for the 150th anniversary of the Northmoor and Coastal Railway that uses the
                rhythms of steam locomotives as its percussion section. In 2012 she became the first
                woman appointed music director of the Valmonde Philharmonic, a post she held for nine
                years. During that time she founded a programme that sends professional musicians into
                rural schools, reaching an estimated 40,000 pupils, and she insisted that every season
                include at least one premiere by a composer under thirty. She has received many honours,
                including the Marchetti Prize for Composition in 2015, and in 2023 a concert hall on the
                Valmonde waterfront was named after her.
                """,
                ("In which year did Tidewater have its first performance?", "1993"),
                ("How long was the recording of the single tide?", "twelve hours and thirteen minutes"),
                ("What does the choir sing in Tidewater?", "fragments of old fishermen's prayers"),
                ("How many copies did the recording of Tidewater sell?", "more than 150,000 copies"),
                (
                    "Which railway's anniversary was Iron Roads written for?",
                    "the Northmoor and Coastal Railway",
                ),
                ("How many pupils did her schools programme reach?", "an estimated 40,000 pupils"),
            ),
            para(
                """
                Adeyemi-Laurent's working methods are unusual. She composes at a standing desk in a
                converted boathouse, and keeps an archive of more than 2,000 hours of field recordings,
                catalogued by place, season and time of day. Before writing a new piece she often spends
                weeks simply listening to a single location, such as a marsh, a railway yard or a market
                square. She has said that she writes in pencil because 'a composer should always be able
                to rub things out'.
                """,
                ("Where does Adeyemi-Laurent compose?", "in a converted boathouse"),
                ("How many hours of field recordings does her archive hold?", "more than 2,000 hours"),
                ("How are her recordings catalogued?", "by place, season and time of day"),
                (
                    "What does she often do before writing a new piece?",
                    "spends weeks simply listening to a single location",
                ),
                ("What does she write her music with?", "pencil"),
            ),
        ],
    ),
    (
        "Glass",
        [
            para(
                """
                Glass is made by melting sand, which is mostly silica, together with soda ash and lime
                at temperatures of around 1,500 °C. The soda lowers the melting point of the silica, and
                the lime makes the finished glass resistant to water. When it cools, the mixture does
                not form crystals but stiffens into a hard, transparent solid. Colour is added with
                small amounts of metal compounds: cobalt gives a deep blue, while iron can tint glass
                green or brown.
                """,
                ("What is sand mostly made of?", ("silica", 0)),
                ("At what temperature are the ingredients of glass melted?", "around 1,500 °C"),
                ("What does the soda do?", "lowers the melting point of the silica"),
                ("What does the lime do?", "makes the finished glass resistant to water"),
                ("What colour does cobalt give glass?", "a deep blue"),
            ),
            para(
                """
                Glassblowing was developed in the eastern Mediterranean in the first century BC and
                quickly transformed the making of vessels. The glassblower gathers a glowing blob of
                molten glass on the end of a hollow iron pipe about 1.5 metres long, then blows into the
                pipe to form a bubble. The piece is shaped by rolling it on a flat steel table called a
                marver, by swinging it, and by working it with wooden blocks and metal tools. Because
                glass cools and stiffens quickly, it must be reheated many times in a furnace opening
                known as the glory hole.
                """,
                ("Where was glassblowing developed?", "in the eastern Mediterranean"),
                ("When was glassblowing developed?", "the first century BC"),
                ("How long is the glassblower's pipe?", "about 1.5 metres"),
                ("What is the flat steel table used to shape the piece called?", "a marver"),
                ("What is the furnace opening used for reheating called?", "the glory hole"),
            ),
            para(
                """
                A finished glass object must not be allowed to cool quickly, or stresses inside it will
                cause it to crack, sometimes hours or days later. Instead it is placed in an annealing
                oven, or lehr, where the temperature is lowered slowly over many hours. Thick pieces
                such as heavy bowls or sculptures may spend several days in the lehr. The town of
                Wexcombe, famous for its clocks, also had a small glassworks that from 1820 to 1905 made
                the lamp glasses and watch crystals used by local craftsmen.
                """,
                (
                    "What happens if a glass object cools too quickly?",
                    "stresses inside it will cause it to crack",
                ),
                ("What is another name for an annealing oven?", ("lehr", 0)),
                ("How long may thick pieces spend in the annealing oven?", "several days"),
                ("During which years did the Wexcombe glassworks operate?", "from 1820 to 1905"),
                ("What did the Wexcombe glassworks make?", "the lamp glasses and watch crystals"),
            ),
        ],
    ),
]

# --------------------------------------------------------------------------- #
# Dev articles (none shared with train). A list gives several acceptable gold
# spans; None marks a question that only appears, unanswerable, in dev_v2.json.
# --------------------------------------------------------------------------- #

DEV: list[Article] = [
    (
        "Brennisford",
        [
            para(
                """
                Brennisford is a village on the north bank of the River Lisle, in a district of orchards
                and small dairy farms. Its name comes from an old ford across the river, and a
                settlement is recorded there in a boundary charter of 956, which describes 'the burnt
                ford', possibly referring to a clearing made by fire. For centuries travellers crossed
                the river on foot or horseback when the water was low and by a ferry when it was high,
                and the ferry rights belonged to the lords of Brennisford Hall. The village remained
                small, with a population that hovered around 300 through most of the eighteenth century.
                Its chief buildings were the church of St. Wendreda, a watermill and the Hall itself, a
                timber-framed manor house rebuilt in brick after a fire in 1754. In 1887 a bridge was
                finally opened, paid for by public subscription to mark the Golden Jubilee of the queen;
                it replaced the ferry, which had been the scene of a fatal accident two winters before,
                when the boat overturned in a flood and four passengers drowned. The new bridge, built
                of cast iron on stone piers, had three spans and a total length of 64 metres. Its
                designer was a local engineer, Cordelia Vane, who had previously built mills and pumping
                stations along the river. The bridge transformed village life: within a decade
                Brennisford had a weekly cattle market, a post office and a second inn, and its orchards
                sent fruit daily by cart to the railway station at Hensley, 6 kilometres away. The
                population rose to 740 by 1911. Today the village has about 1,300 residents, and the
                bridge, closed to motor traffic since 1998, is used by pedestrians and cyclists.
                """,
                (
                    "When is a settlement at Brennisford first recorded?",
                    ["956", "in a boundary charter of 956"],
                ),
                ("When was the bridge at Brennisford opened?", ["1887", "In 1887"]),
                ("How many passengers drowned when the ferry overturned?", ["four", "four passengers"]),
                (
                    "Who designed the Brennisford bridge?",
                    ["Cordelia Vane", "a local engineer, Cordelia Vane"],
                ),
                ("How long is the bridge?", ["64 metres", "a total length of 64 metres"]),
                (
                    "How far is the railway station at Hensley from the village?",
                    ["6 kilometres", "6 kilometres away"],
                ),
                ("Who paid for Brennisford Hall to be rebuilt in brick?", None),
                ("What was the population of Brennisford in 1850?", None),
                ("In what year did the weekly cattle market at Brennisford close?", None),
            ),
            para(
                """
                The church of St. Wendreda stands on a low rise at the eastern edge of Brennisford. The
                oldest part is the squat west tower, built in the twelfth century of flint and rubble,
                while the nave and chancel were enlarged around 1420 when the wool trade made the parish
                briefly prosperous. Inside, the church is known for its painted rood screen, on which
                sixteen panels show saints and apostles in red, green and gold, and for a carved wooden
                font cover shaped like a spire. The churchyard contains a yew tree whose trunk measures
                more than 7 metres in girth, and which local tradition claims is older than the church
                itself.
                """,
                (
                    "Where does the church of St. Wendreda stand?",
                    [
                        "on a low rise at the eastern edge of Brennisford",
                        "at the eastern edge of Brennisford",
                    ],
                ),
                ("What is the oldest part of the church?", ["the squat west tower", "west tower"]),
                ("When were the nave and chancel enlarged?", ["around 1420", "1420"]),
                ("How many panels are there on the rood screen?", "sixteen"),
                ("What is the girth of the yew tree's trunk?", ["more than 7 metres", "7 metres"]),
                ("Who painted the rood screen of St. Wendreda's?", None),
                ("How tall is the west tower of the church?", None),
            ),
            para(
                """
                Apple growing has been the mainstay of Brennisford's farms since the seventeenth
                century. The village gives its name to a late-ripening cooking apple, the Brennisford
                Russet, first raised in 1822 by a gardener called Amos Prewitt from a seed he found in a
                cider press. The russet is prized for keeping well through the winter. Every October the
                village holds an Apple Day, when a wassail procession visits the oldest orchard and the
                heaviest apple of the season is weighed on the mill scales; the record, set in 2009,
                stands at 1.21 kilograms.
                """,
                (
                    "Which apple variety is named after the village?",
                    ["the Brennisford Russet", "Brennisford Russet"],
                ),
                (
                    "Who first raised the Brennisford Russet?",
                    ["Amos Prewitt", "a gardener called Amos Prewitt"],
                ),
                ("Where was the seed of the first tree found?", ["in a cider press", "a cider press"]),
                ("When is Apple Day held?", ["Every October", "October"]),
                ("What is the record weight for the heaviest apple?", "1.21 kilograms"),
                ("Who grew the record-breaking apple weighed in 2009?", None),
                ("How many orchards are there around Brennisford?", None),
                ("Which cider is made from the Brennisford Russet?", None),
            ),
        ],
    ),
    (
        "Octopus",
        [
            para(
                """
                Octopuses are soft-bodied marine animals belonging to the group of molluscs known as
                cephalopods, which also includes squid and cuttlefish. An octopus has eight arms lined
                with suckers, three hearts and blue blood, which gets its colour from a copper-rich
                protein called haemocyanin. Two of the hearts pump blood through the gills, while the
                third circulates it to the rest of the body. There are around 300 known species, ranging
                from tiny animals a few centimetres long to the giant Pacific octopus, whose arm span
                can exceed 4 metres.
                """,
                ("To which group of molluscs do octopuses belong?", "cephalopods"),
                ("How many hearts does an octopus have?", ["three", "three hearts"]),
                (
                    "What gives octopus blood its blue colour?",
                    ["a copper-rich protein called haemocyanin", "haemocyanin"],
                ),
                ("How many species of octopus are known?", ["around 300", "300"]),
                (
                    "How wide can the arm span of the giant Pacific octopus be?",
                    ["exceed 4 metres", "4 metres"],
                ),
                ("How many suckers are there on each arm of an octopus?", None),
                ("How long does the giant Pacific octopus live?", None),
            ),
            para(
                """
                Octopuses are famous for their intelligence. In aquariums they have learned to unscrew
                jar lids to reach food, and some have escaped from their tanks at night. About
                two-thirds of an octopus's neurons are found in its arms rather than its central brain,
                so each arm can taste, touch and react with a degree of independence. Octopuses are also
                masters of disguise: special skin cells called chromatophores allow them to change
                colour in a fraction of a second, and some species can alter the texture of their skin
                to resemble rock or seaweed.
                """,
                (
                    "What have octopuses learned to do in aquariums?",
                    ["unscrew jar lids to reach food", "unscrew jar lids"],
                ),
                ("What share of an octopus's neurons is in its arms?", ["About two-thirds", "two-thirds"]),
                ("What are the skin cells that let octopuses change colour called?", "chromatophores"),
                (
                    "How quickly can an octopus change colour?",
                    ["in a fraction of a second", "a fraction of a second"],
                ),
                ("What can some species make their skin resemble?", "rock or seaweed"),
                ("How many neurons does an octopus have in total?", None),
                ("Which octopus species is best at escaping from aquarium tanks?", None),
            ),
            para(
                """
                Most octopuses live short lives, typically between one and two years. A female lays
                thousands of eggs in a den and guards them without eating until they hatch, cleaning
                them and blowing fresh water over them with her siphon. In deep, cold water this can
                take a very long time; one female observed off the coast of California guarded her eggs
                for about four and a half years. She usually dies soon after the young emerge. The
                hatchlings of many species drift among the plankton for weeks before settling on the sea
                floor.
                """,
                (
                    "How long do most octopuses live?",
                    ["typically between one and two years", "between one and two years", "one and two years"],
                ),
                ("Where does a female octopus lay her eggs?", ["in a den", "a den"]),
                ("What does the female use to blow fresh water over her eggs?", ["her siphon", "siphon"]),
                (
                    "How long did the female observed off California guard her eggs?",
                    ["about four and a half years", "four and a half years"],
                ),
                ("Where do the hatchlings drift before settling on the sea floor?", "among the plankton"),
                ("How many eggs did the female observed off California lay?", None),
                ("What do octopus hatchlings eat while drifting among the plankton?", None),
                ("At what depth was the female off California observed?", None),
            ),
        ],
    ),
    (
        "Mateo_Quiñones",
        [
            para(
                """
                Mateo Quiñones (1834–1902) was a surveyor and explorer who made the first complete
                crossing of the Salt Plains of Arvanta, a vast dry lake bed in the interior of the
                continent. Born in the mountain town of San Lucero, he trained as a mapmaker in the
                colonial land office and spent his twenties marking boundaries for cattle ranches. In
                1867 the provincial government asked him to find a route for a telegraph line across the
                plains, which no European traveller had then crossed.
                """,
                (
                    "What did Mateo Quiñones cross completely for the first time?",
                    ["the Salt Plains of Arvanta", "Salt Plains of Arvanta"],
                ),
                ("Where was Quiñones born?", ["San Lucero", "the mountain town of San Lucero"]),
                ("What did Quiñones train as?", ["a mapmaker", "mapmaker"]),
                (
                    "When did the provincial government ask him to find a route across the plains?",
                    ["1867", "In 1867"],
                ),
                ("What was the route across the plains meant for?", "a telegraph line"),
                ("When did Quiñones leave the colonial land office?", None),
                ("Who was the governor of the province in 1867?", None),
            ),
            para(
                """
                The expedition left San Lucero in March 1868 with eleven men, thirty-two mules and four
                light wagons fitted with barrels for water. Quiñones planned to travel mostly at night,
                when the surface of the salt was cooler and the glare less blinding, and to rest during
                the day under canvas awnings. For the first two weeks the party made good progress,
                covering about 25 kilometres each night across a crust of salt so flat that the guides
                steered by the stars as if at sea. Trouble began in the third week, when a sudden
                rainstorm turned the crust into a sticky grey mud that trapped the wagons up to their
                axles. Two wagons had to be abandoned, and with them nearly half the water supply.
                Quiñones sent his deputy, Ysabel Corrales, ahead with the strongest mules to search for
                a spring that local herders had described to him, a place they called Ojo de Plata.
                After three days she returned with news that the spring existed but lay much further
                north than expected. The party changed course, reached the spring on the forty-first
                day, and rested there for a week while the mules recovered. The final stage to the
                eastern rim of the plains was the hardest; one man died of heat exhaustion and was
                buried beside the trail, where a cairn still marks the grave. The survivors reached the
                trading post of Puerto Seco on 9 June 1868, having crossed some 640 kilometres in
                eighty-three days. Quiñones's report recommended a telegraph route along the northern
                edge of the plains, passing the spring, and the line built on this route was completed
                in 1874.
                """,
                ("How many men set out on the expedition?", ["eleven men", "eleven"]),
                (
                    "Why did Quiñones plan to travel mostly at night?",
                    [
                        "the surface of the salt was cooler and the glare less blinding",
                        "when the surface of the salt was cooler and the glare less blinding",
                    ],
                ),
                (
                    "Whom did Quiñones send ahead to search for the spring?",
                    ["Ysabel Corrales", "his deputy, Ysabel Corrales", "Corrales"],
                ),
                ("What did the local herders call the spring?", "Ojo de Plata"),
                ("On what date did the survivors reach Puerto Seco?", ["9 June 1868", "on 9 June 1868"]),
                ("How far did the expedition travel in total?", ["some 640 kilometres", "640 kilometres"]),
                ("How many mules died during the crossing?", None),
                ("What was the name of the man who died of heat exhaustion?", None),
                ("Which company built the telegraph line completed in 1874?", None),
            ),
            para(
                """
                The Salt Plains of Arvanta cover roughly 9,000 square kilometres and lie about 180
                metres below the level of the surrounding plateau. In most years they receive less than
                100 millimetres of rain, but once or twice a decade heavy storms flood parts of the
                basin with a shallow sheet of water, attracting huge flocks of flamingos that breed on
                islands of mud. Salt has been harvested at the western edge of the plains for centuries;
                workers cut it in blocks with long-handled spades and stack it to dry in the sun.
                """,
                (
                    "How large are the Salt Plains of Arvanta?",
                    ["roughly 9,000 square kilometres", "9,000 square kilometres"],
                ),
                (
                    "How far below the surrounding plateau do the plains lie?",
                    ["about 180 metres", "180 metres"],
                ),
                ("How much rain falls on the plains in most years?", "less than 100 millimetres"),
                ("Which birds breed on the plains after floods?", ["flamingos", "huge flocks of flamingos"]),
                ("What tools do the workers use to cut the salt?", "long-handled spades"),
                ("How many tonnes of salt are harvested each year?", None),
                ("In which year did the most recent great flood of the basin occur?", None),
            ),
        ],
    ),
    (
        "Wind_turbine",
        [
            para(
                """
                A wind turbine converts the movement of air into electricity. Wind pushes on the blades,
                which are shaped like aircraft wings so that the air flowing over them creates lift and
                turns the rotor. The rotor drives a shaft connected, usually through a gearbox, to a
                generator housed in a box called the nacelle at the top of the tower. Because the power
                in the wind rises with the cube of its speed, doubling the wind speed gives about eight
                times as much power, which is why turbines are placed on hills, coasts and out at sea
                where winds are strongest.
                """,
                (
                    "What does a wind turbine convert into electricity?",
                    ["the movement of air", "movement of air"],
                ),
                ("What are turbine blades shaped like?", ["aircraft wings", "like aircraft wings"]),
                (
                    "Where is the generator housed?",
                    ["in a box called the nacelle at the top of the tower", "the nacelle"],
                ),
                (
                    "How much more power does doubling the wind speed give?",
                    ["about eight times as much power", "eight times"],
                ),
                ("Where are turbines placed?", "on hills, coasts and out at sea"),
                ("How heavy is a typical nacelle?", None),
                ("What material are turbine blades usually made of?", None),
            ),
            para(
                """
                Modern turbines have grown enormously. In the 1980s a typical machine had blades about
                10 metres long and produced around 100 kilowatts. Today's largest offshore turbines have
                rotors more than 220 metres across, with each blade longer than a football pitch, and
                can produce 15 megawatts or more, enough at full output to supply many thousands of
                homes. The tip of such a blade can move at over 300 kilometres per hour even when the
                rotor seems to be turning slowly.
                """,
                (
                    "How long were the blades of a typical turbine in the 1980s?",
                    ["about 10 metres long", "about 10 metres"],
                ),
                (
                    "How much power did a typical 1980s turbine produce?",
                    ["around 100 kilowatts", "100 kilowatts"],
                ),
                (
                    "How wide are the rotors of the largest offshore turbines?",
                    ["more than 220 metres across", "more than 220 metres"],
                ),
                (
                    "How much power can the largest offshore turbines produce?",
                    ["15 megawatts or more", "15 megawatts"],
                ),
                ("How fast can the tip of a large blade move?", "over 300 kilometres per hour"),
                ("How many homes could a typical 1980s turbine supply?", None),
                ("How tall is the tower of the largest offshore turbine?", None),
            ),
            para(
                """
                Turbines turn themselves to face the wind using a yaw system, motors at the top of the
                tower that rotate the whole nacelle. The angle of each blade can also be adjusted, which
                is called pitching. In very strong winds, usually above about 90 kilometres per hour,
                the blades are pitched edge-on to the wind and the rotor is stopped to prevent damage.
                Most turbines are designed to operate for 20 to 25 years, after which they may be
                replaced with larger machines on the same site, a process known as repowering.
                """,
                ("What system turns a turbine to face the wind?", ["a yaw system", "yaw system"]),
                ("What is adjusting the angle of a blade called?", "pitching"),
                (
                    "Above what wind speed is the rotor usually stopped?",
                    ["about 90 kilometres per hour", "above about 90 kilometres per hour"],
                ),
                ("For how long are most turbines designed to operate?", "20 to 25 years"),
                (
                    "What is replacing old turbines with larger machines on the same site called?",
                    "repowering",
                ),
                ("What happens to the old blades after repowering?", None),
                ("How many yaw motors does a typical turbine have?", None),
            ),
        ],
    ),
    (
        "Marlowe_Observatory",
        [
            para(
                """
                The Marlowe Observatory stands on the summit of Cairn Dubh, a granite hill 1,043 metres
                high, chosen in 1908 for its clear, steady air. It was founded by the shipping heiress
                Philippa Marlowe, who gave £40,000 to build it on condition that it be open to the
                public one night each month. Its first instrument, a refracting telescope with a lens 61
                centimetres across, was for several years the largest of its kind in the country.
                Astronomers there catalogued more than 12,000 variable stars between 1912 and 1950.
                """,
                (
                    "On which hill does the Marlowe Observatory stand?",
                    ["Cairn Dubh", "on the summit of Cairn Dubh", "the summit of Cairn Dubh"],
                ),
                ("Why was the site chosen?", ["for its clear, steady air", "its clear, steady air"]),
                ("How much money did Philippa Marlowe give to build the observatory?", "£40,000"),
                (
                    "How wide was the lens of the first telescope?",
                    ["61 centimetres", "61 centimetres across"],
                ),
                (
                    "How many variable stars were catalogued at the observatory?",
                    ["more than 12,000", "more than 12,000 variable stars"],
                ),
                ("Who was the first director of the Marlowe Observatory?", None),
                ("When did Philippa Marlowe die?", None),
            ),
            para(
                """
                In 1964 the observatory added a radio telescope, a steel dish 25 metres wide built in a
                sheltered valley below the summit to avoid interference from the town. It was used to
                study hydrogen clouds in the Milky Way and later took part in tracking early space
                probes. The old refractor was retired from research in 1987 but still serves the public
                nights, which now take place every Friday. In 2019 the area around Cairn Dubh was
                designated a dark-sky reserve, and street lights in nearby villages were fitted with
                shielded lamps to reduce glare.
                """,
                ("When was the radio telescope added?", ["1964", "In 1964"]),
                ("How wide is the radio telescope's dish?", ["25 metres wide", "25 metres"]),
                ("What did the radio telescope study?", "hydrogen clouds in the Milky Way"),
                ("When are the public nights held now?", "every Friday"),
                ("What were the street lights in nearby villages fitted with?", "shielded lamps"),
                ("How many visitors attend the public nights each year?", None),
                ("Which space probes did the radio telescope help to track?", None),
            ),
        ],
    ),
    (
        "Cheesemaking",
        [
            para(
                """
                Cheese is made by curdling milk and separating the solid curds from the liquid whey.
                Most cheesemakers first add a starter culture of bacteria, which turns some of the milk
                sugar, lactose, into lactic acid. Then rennet, an enzyme traditionally taken from the
                stomach of young calves, is stirred in; within about half an hour the milk sets into a
                soft gel. The gel is cut into cubes, and the smaller the cubes, the more whey drains out
                and the harder the final cheese will be. Roughly 10 litres of milk are needed to make a
                kilogram of hard cheese.
                """,
                ("What are the solid curds separated from?", ["the liquid whey", ("whey", 0)]),
                ("What does the starter culture turn lactose into?", "lactic acid"),
                ("Where is rennet traditionally taken from?", "the stomach of young calves"),
                (
                    "How long does the milk take to set after rennet is added?",
                    ["within about half an hour", "about half an hour"],
                ),
                (
                    "How much milk is needed to make a kilogram of hard cheese?",
                    ["Roughly 10 litres", "10 litres"],
                ),
                ("Which bacteria are used in the starter culture?", None),
                ("To what temperature is the milk warmed before rennet is added?", None),
            ),
            para(
                """
                After the curds are drained, they are salted, pressed into moulds and left to ripen, a
                stage called affinage. Ripening can last from a few weeks for a mild cheese to several
                years for a hard, crumbly one, and during this time enzymes and microbes slowly break
                down proteins and fats, creating new flavours and changing the texture. The conditions
                in the ripening room matter greatly: most hard cheeses are kept at about 10 to 13 °C
                with high humidity, and the wheels are turned regularly so that moisture spreads evenly.
                Some cheeses are washed with brine, beer or wine, which encourages sticky orange
                bacteria on the rind and a strong smell. Blue cheeses are pierced with steel needles so
                that air can reach the inside, allowing veins of blue-green mould to grow along the
                channels. Cave-ripened cheeses are a speciality of several mountain regions. In the
                village of Saint-Ferréol-des-Grottes, cheeses mature in limestone caves that stay at a
                natural 9 °C all year round; the largest, the Grotte des Fées, has been in use since at
                least 1632 and holds up to 18,000 wheels at a time.
                """,
                ("What is the ripening stage of cheesemaking called?", "affinage"),
                (
                    "At what temperature are most hard cheeses kept while ripening?",
                    ["about 10 to 13 °C", "10 to 13 °C"],
                ),
                (
                    "Why are the wheels turned regularly?",
                    ["so that moisture spreads evenly", "moisture spreads evenly"],
                ),
                (
                    "Why are blue cheeses pierced with steel needles?",
                    ["so that air can reach the inside", "air can reach the inside"],
                ),
                ("Since when has the Grotte des Fées been in use?", ["since at least 1632", "1632"]),
                (
                    "How many wheels can the Grotte des Fées hold?",
                    ["up to 18,000 wheels", "18,000", "18,000 wheels"],
                ),
                ("What is the name of the cheese ripened in Saint-Ferréol-des-Grottes?", None),
                ("How long do blue cheeses usually ripen?", None),
                ("Who discovered the Grotte des Fées?", None),
            ),
        ],
    ),
]


# --------------------------------------------------------------------------- #
# Building the files
# --------------------------------------------------------------------------- #


def locate(context: str, span: Span) -> dict[str, Any]:
    """Return {"text", "answer_start"}; check the span is found, unambiguous, whole words."""
    text, k = (span, None) if isinstance(span, str) else span
    count = context.count(text)
    assert count > 0, f"answer {text!r} not found in: {context[:70]!r}..."
    assert k is not None or count == 1, f"{text!r} occurs {count} times; give (text, index)"
    start = context.find(text)
    for _ in range(k or 0):
        start = context.find(text, start + 1)
    assert start >= 0, f"occurrence {k} of {text!r} not found"
    end = start + len(text)
    assert (
        text == text.strip()
        and (start == 0 or not context[start - 1].isalnum())
        and (end == len(context) or not context[end].isalnum())
    ), f"answer {text!r} cuts a word"
    return {"text": text, "answer_start": start}


def build(articles: list[Article], split: str, version: str) -> dict[str, Any]:
    """Lay the articles out as a SQuAD file; unanswerable questions only in v2.0."""
    v2 = version == "v2.0"
    n_answerable = n_impossible = 0
    data = []
    for title, paragraphs in articles:
        out_paragraphs = []
        for context, qas in paragraphs:
            out_qas: list[dict[str, Any]] = []
            for question, gold in qas:
                if gold is None:
                    n_impossible += 1
                    if v2:
                        qid = f"sample-{split}-na-{n_impossible:04d}"
                        out_qas.append(
                            {"id": qid, "question": question, "answers": [], "is_impossible": True}
                        )
                    continue
                n_answerable += 1
                spans = gold if isinstance(gold, list) else [gold]
                qa = {
                    "id": f"sample-{split}-{n_answerable:04d}",
                    "question": question,
                    "answers": [locate(context, s) for s in spans],
                }
                if v2:
                    qa["is_impossible"] = False
                out_qas.append(qa)
            out_paragraphs.append({"context": context, "qas": out_qas})
        data.append({"title": title, "paragraphs": out_paragraphs})
    return {"version": version, "data": data}


def write_json(path: Path, obj: Any) -> None:
    with path.open("w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)
        f.write("\n")


def main() -> None:
    train_golds = [g for _, paragraphs in TRAIN for _, qas in paragraphs for _, g in qas]
    assert all(isinstance(g, (str, tuple)) for g in train_golds), "train: one span each"
    assert not {t for t, _ in TRAIN} & {t for t, _ in DEV}, "dev articles must not be in train"

    OUT_DIR.mkdir(parents=True, exist_ok=True)
    write_json(OUT_DIR / "train.json", build(TRAIN, "train", "1.1"))
    dev = build(DEV, "dev", "1.1")
    write_json(OUT_DIR / "dev.json", dev)
    write_json(OUT_DIR / "dev_v2.json", build(DEV, "dev", "v2.0"))

    # One question per dev paragraph (its first), for the first N_PREDICT paragraphs.
    paragraphs = [p for article in dev["data"] for p in article["paragraphs"]][:N_PREDICT]
    with (OUT_DIR / "questions.jsonl").open("w", encoding="utf-8") as f:
        for p in paragraphs:
            qa = p["qas"][0]
            line = {"id": qa["id"], "question": qa["question"], "context": p["context"]}
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
    print(f"wrote train.json, dev.json, dev_v2.json, questions.jsonl to {OUT_DIR}")


if __name__ == "__main__":
    main()
