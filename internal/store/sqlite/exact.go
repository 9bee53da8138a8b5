package sqlite

import (
	"database/sql/driver"
	"fmt"
	"math/big"
	"strings"

	msqlite "modernc.org/sqlite"
)

// exactAddFunc is the SQL function the movie corpus triggers keep their
// exact sums with: fs_exact_add(sum, x, sign, power) is sum + sign × x^power,
// where sum and x are decimal text (x as a row's JSON holds it) and the
// result is decimal text. SQLite has no exact decimal type; Postgres keeps
// the same sums in numeric, so both engines hold the very same sums.
const exactAddFunc = "fs_exact_add"

// The store's SQL functions are registered with the driver when the package
// is initialised, before any connection can open: the driver reads its
// function table on every open, so registering later (even once, from
// Open) raced with a connection another goroutine was opening.
func init() {
	msqlite.MustRegisterDeterministicScalarFunction(exactAddFunc, 4, exactAdd)
}

func exactAdd(_ *msqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
	if out, ok := exactAddFixed(args); ok {
		return out, nil
	}
	sum, err := decimalArg(args[0])
	if err != nil {
		return nil, err
	}
	x, err := decimalArg(args[1])
	if err != nil {
		return nil, err
	}
	sign, ok1 := args[2].(int64)
	power, ok2 := args[3].(int64)
	if !ok1 || !ok2 || (sign != 1 && sign != -1) || (power != 1 && power != 2) {
		return nil, fmt.Errorf("%s: sign must be ±1 and power 1 or 2", exactAddFunc)
	}
	if power == 2 {
		x.Mul(x, x)
	}
	if sign < 0 {
		x.Neg(x)
	}
	return decimalText(sum.Add(sum, x)), nil
}

// decimalArg parses a decimal given as text or as a number SQLite already
// parsed (an integer; a REAL is refused, as it may not be the exact value).
func decimalArg(v driver.Value) (*big.Rat, error) {
	var s string
	switch x := v.(type) {
	case string:
		s = x
	case []byte:
		s = string(x)
	case int64:
		return new(big.Rat).SetInt64(x), nil
	default:
		return nil, fmt.Errorf("%s: %T is not decimal text", exactAddFunc, v)
	}
	r, ok := new(big.Rat).SetString(strings.TrimSpace(s))
	if !ok {
		return nil, fmt.Errorf("%s: %q is not a decimal", exactAddFunc, s)
	}
	return r, nil
}

// decimalText writes a sum of decimals, which is a decimal (its denominator
// divides a power of ten), exactly: as many fractional digits as it needs.
func decimalText(r *big.Rat) string {
	if r.IsInt() {
		return r.Num().String()
	}
	den := new(big.Int).Set(r.Denom())
	digits := 0
	ten, zero := big.NewInt(10), big.NewInt(0)
	for scale := big.NewInt(1); digits < 400; digits++ {
		if new(big.Int).Mod(scale, den).Cmp(zero) == 0 {
			break
		}
		scale.Mul(scale, ten)
	}
	return r.FloatString(digits)
}

// exactAddFixed is exactAdd for the arguments the triggers pass in practice,
// sum and x plain decimals ([-]digits[.digits], as text), in fixed point:
// each is an integer and a count of fractional digits, so the sum needs
// neither a fraction's reductions nor the search for its digits that
// decimalText makes. It gives the very same text as the big.Rat path
// (TestExactAddFixed); ok is false for any other arguments, which take that
// path.
func exactAddFixed(args []driver.Value) (string, bool) {
	sumText, ok1 := args[0].(string)
	xText, ok2 := args[1].(string)
	sign, ok3 := args[2].(int64)
	power, ok4 := args[3].(int64)
	if !ok1 || !ok2 || !ok3 || !ok4 || (sign != 1 && sign != -1) || (power != 1 && power != 2) {
		return "", false
	}
	sum, sumScale, ok1 := parseFixed(sumText)
	x, xScale, ok2 := parseFixed(xText)
	if !ok1 || !ok2 {
		return "", false
	}
	if power == 2 {
		x.Mul(x, x)
		xScale *= 2
	}
	if sign < 0 {
		x.Neg(x)
	}
	scale := max(sumScale, xScale)
	sum.Mul(sum, pow10(scale-sumScale))
	x.Mul(x, pow10(scale-xScale))
	return formatFixed(sum.Add(sum, x), scale), true
}

// parseFixed reads [-]digits[.digits] as an integer and its fractional digit
// count.
func parseFixed(s string) (*big.Int, int, bool) {
	digits := strings.TrimPrefix(s, "-")
	whole, frac, _ := strings.Cut(digits, ".")
	if whole == "" || !allDigits(whole) || !allDigits(frac) || (strings.Contains(digits, ".") && frac == "") {
		return nil, 0, false
	}
	n, ok := new(big.Int).SetString(whole+frac, 10)
	if !ok {
		return nil, 0, false
	}
	if len(s) > len(digits) {
		n.Neg(n)
	}
	return n, len(frac), true
}

func allDigits(s string) bool {
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

var tenInt = big.NewInt(10)

func pow10(n int) *big.Int {
	return new(big.Int).Exp(tenInt, big.NewInt(int64(n)), nil)
}

// formatFixed writes n / 10^scale as decimalText does: no fractional part
// for an integer, else as few fractional digits as the value needs.
func formatFixed(n *big.Int, scale int) string {
	neg := n.Sign() < 0
	digits := new(big.Int).Abs(n).String()
	if len(digits) <= scale {
		digits = strings.Repeat("0", scale-len(digits)+1) + digits
	}
	whole, frac := digits[:len(digits)-scale], strings.TrimRight(digits[len(digits)-scale:], "0")
	out := whole
	if frac != "" {
		out += "." + frac
	}
	if neg {
		out = "-" + out
	}
	return out
}
