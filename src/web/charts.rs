//! Server-rendered SVG pictures: bars of money per month, a line of energy
//! per day. Pure functions from numbers to markup.
