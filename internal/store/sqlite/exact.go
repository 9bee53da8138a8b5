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
