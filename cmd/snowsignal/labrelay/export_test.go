package labrelay

// HasStatsSocketFlag lets the external tests ask what Start asks.
var HasStatsSocketFlag = hasStatsSocketFlag
