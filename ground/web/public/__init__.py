"""The public room: the mairie pages, the JSON API, their live stream and iCalendar feed.

Everything here renders `ground.views` (timetable, status and predicted times of the bus);
no patient data exists in these views and none must be added.
"""
