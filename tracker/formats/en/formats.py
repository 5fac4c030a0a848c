# English dates and times as staff and readers see them: a 24-hour clock, so that a time never
# ends in "a.m." and a sentence after it never carries a double full stop.
DATETIME_FORMAT = "N j, Y, H:i"
TIME_FORMAT = "H:i"
SHORT_DATETIME_FORMAT = "m/d/Y H:i"
