"""How far a bus's clock may disagree with the ground's: the window a message's time must
fall in, judged against when the ground received it.

A Pi's clock can be wrong (no RTC, booted offline, a bad NTP answer) and the contract only
says a time is well formed. A message dated ahead of its receipt would freeze the live
state and push every ETA into the future; one dated decades back says nothing true either.
So the ground lets through what is at most `ahead` in the future (clocks that drift a
little) and at most `behind` in the past (a backlog drained after a long outage), and sets
the rest aside as dead letters, counted per vehicle and shown on the dashboard. Whatever is
let through leaves room for any arithmetic the ground does with it (days, weeks): nothing
near the ends of the calendar comes in. The times a message forecasts (a queue's end, its
last booking) are held to today's session the same way (`judge_forecasts`).

A status is exempt: the ground applies statuses in the order the broker delivers them and
uses its own receipt time for them, never theirs (the Last Will carries the time it was
set, when the bus connected, which may be long before the broker hands it on), so a bus
whose clock is off is still seen online or offline.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from ground.store import Message
from medicobus import contract

FORECAST_AHEAD = timedelta(days=1)  # a session's end and last booking: today's


class TimeBounds(BaseModel):
    """`[time_bounds]` in the ground config."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    ahead_s: Annotated[int, Field(ge=0, le=86_400)] = 300
    behind_days: Annotated[int, Field(ge=1, le=3650)] = 60

    def judge(self, message: Message, received: datetime) -> str | None:
        """Why `message`'s time cannot be used, or None when it can."""
        if isinstance(message, contract.Status):
            return None
        offset = message.ts - received
        seconds = offset.total_seconds()
        if -self.behind_days * 86_400 <= seconds <= self.ahead_s:  # the usual case
            return None
        if offset > timedelta(seconds=self.ahead_s):
            return (f"time: ts {message.ts.isoformat()} is {_span(offset)} ahead of the "
                    f"ground's clock (at most {_span(timedelta(seconds=self.ahead_s))}): "
                    "is the bus's clock right?")  # fmt: skip
        if -offset > timedelta(days=self.behind_days):
            return (f"time: ts {message.ts.isoformat()} is {_span(-offset)} behind the "
                    f"ground's clock (at most {self.behind_days} days): "
                    "is the bus's clock right?")  # fmt: skip
        return None


    def judge_forecasts(self, message: Message, received: datetime) -> str | None:
        """Why a time a message forecasts cannot be used, or None when it can: a queue's
        end or its last booking further than `FORECAST_AHEAD` ahead, or behind the past
        window, is no forecast of today's session (and 9999-12-31 would make every ETA
        after it overflow)."""
        if not isinstance(message, contract.QueueState):
            return None
        for name, moment in (("ends_at", message.ends_at),
                             ("last_booked", message.last_booked)):  # fmt: skip
            if moment is None:
                continue
            offset = moment - received
            if not -timedelta(days=self.behind_days) <= offset <= FORECAST_AHEAD:
                return (f"time: {name} {moment.isoformat()} is {_span(abs(offset))} "
                        f"{'ahead of' if offset > timedelta(0) else 'behind'} the ground's "
                        f"clock (a forecast of the session, at most "
                        f"{_span(FORECAST_AHEAD)} ahead)")  # fmt: skip
        return None


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds >= 2 * 86_400:
        return f"{seconds // 86_400} days"
    if seconds >= 2 * 3600:
        return f"{seconds // 3600} h"
    if seconds >= 120:
        return f"{seconds // 60} min"
    return f"{seconds} s"
