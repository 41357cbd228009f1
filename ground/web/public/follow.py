"""The queue on the patient's phone: the page a ticket's QR code opens (/t/<token>).

Anonymous by construction: the token is random (made by the kiosk, 128 bits) and the page
shows a ticket number and a place in the queue, nothing else; the ground finds the ticket
by the token's reference in its visit's latest queue (`Board.ticket`). Small and without a
framework, for a phone on a weak signal: the texts are worded here, once, in French or in
English, and the live stream sends them in the commune page's shape, so static/live.js
places them as it does there.
"""

from __future__ import annotations

from ground.views import TicketView
from ground.web.format import hm
from ground.web.public.views import Lang

SOON_AHEAD = 2  # "C'est bientôt à vous" from two people before you

WORDS: dict[Lang, dict[str, str]] = {
    "fr": {
        "title": "Ticket {n}",
        "called": "Ticket {n} : c'est à vous ! Présentez-vous au médicobus.",
        "next": "Ticket {n} : vous êtes le prochain",
        "one": "Ticket {n} : 1 personne avant vous",
        "many": "Ticket {n} : {ahead} personnes avant vous",
        "about": ", environ {m} min",
        "soon": "C'est bientôt à vous",
        "paused": "Le médecin fait une courte pause.",
        "ended": "Ce ticket n'est plus suivi : la consultation est terminée, "
                 "ou votre passage a eu lieu.",
        "updated": "mis à jour à {t}",
        "unknown_title": "Ticket",
    },
    "en": {
        "title": "Ticket {n}",
        "called": "Ticket {n}: it is your turn! Please come to the médicobus.",
        "next": "Ticket {n}: you are next",
        "one": "Ticket {n}: 1 person before you",
        "many": "Ticket {n}: {ahead} people before you",
        "about": ", about {m} min",
        "soon": "It will soon be your turn",
        "paused": "The doctor is taking a short break.",
        "ended": "This ticket is no longer followed: the session is over, "
                 "or you have been seen.",
        "updated": "updated at {t}",
        "unknown_title": "Ticket",
    },
}


def follow_texts(t: TicketView | None, lang: Lang) -> dict[str, str]:
    """Every text of the page by the id of the element that shows it ("" hides it)."""
    w = WORDS[lang]
    if t is None or t.ended:
        return {"title": w["title"].format(n=t.number) if t else w["unknown_title"],
                "place": "", "soon": "", "paused": "", "ended": w["ended"],
                "updated": ""}  # fmt: skip
    if t.called:
        place = w["called"].format(n=t.number)
    else:
        key = "next" if t.ahead == 0 else "one" if t.ahead == 1 else "many"
        place = w[key].format(n=t.number, ahead=t.ahead)
        if t.wait_min > 0:
            place += w["about"].format(m=t.wait_min)
    return {
        "title": w["title"].format(n=t.number),
        "place": place,
        "soon": w["soon"] if not t.called and t.ahead <= SOON_AHEAD else "",
        "paused": w["paused"] if t.paused and not t.called else "",
        "ended": "",
        "updated": w["updated"].format(t=hm(t.updated_at)),
    }
