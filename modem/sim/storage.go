package sim

import (
	"strconv"
	"strings"
)

func (s *sess) cpms(c atCmd, args []string) result {
	m := s.m
	st := &m.st
	usage := func(mem string) string {
		n := 0
		for _, x := range m.stores[mem] {
			if x != nil {
				n++
			}
		}
		return itoa(n) + "," + itoa(m.capacity)
	}
	switch c.op {
	case opTest:
		l := storageList(m.prof)
		return ok("+CPMS: " + l + "," + l + "," + l)
	}
	if c.op == opSet && len(args) > m.prof.storageMems() {
		return fail(s.tooMany(cmsErr(cmsNotSupported)))
	}
	switch c.op {
	case opRead:
		return ok("+CPMS: " + q(st.mem[0]) + "," + usage(st.mem[0]) + "," + q(st.mem[1]) + "," +
			usage(st.mem[1]) + "," + q(st.mem[2]) + "," + usage(st.mem[2]))
	}
	if len(args) == 0 || len(args) > 3 {
		return fail(cmsErr(cmsNotAllowed))
	}
	mem := st.mem
	for i, a := range args {
		if a == "" {
			continue
		}
		if _, okm := m.stores[strings.ToUpper(a)]; !okm {
			return fail(cmsErr(cmsNotSupported))
		}
		mem[i] = strings.ToUpper(a)
	}
	st.mem = mem
	if m.prof.storageMems() == 2 {
		return ok("+CPMS: " + usage(mem[0]) + "," + usage(mem[1]))
	}
	return ok("+CPMS: " + usage(mem[0]) + "," + usage(mem[1]) + "," + usage(mem[2]))
}

// slot returns the storage entry named by a TE index in mem1.
func (m *Modem) slot(arg string) (mem string, i int, okIdx bool) {
	mem = m.st.mem[0]
	idx, err := strconv.Atoi(arg)
	i = idx - m.prof.IndexBase
	if err != nil || i < 0 || i >= len(m.stores[mem]) {
		return mem, 0, false
	}
	return mem, i, true
}

func (s *sess) cmgr(c atCmd, args []string) result {
	m := s.m
	if c.op == opTest {
		return ok()
	}
	if c.op != opSet || len(args) != 1 {
		return fail(cmsErr(cmsNotAllowed))
	}
	mem, i, okIdx := m.slot(args[0])
	if !okIdx {
		return fail(cmsErr(cmsInvalidIndex))
	}
	x := m.stores[mem][i]
	if x == nil {
		// An empty slot: most modems answer a bare OK.
		return ok()
	}
	info := []string{"+CMGR: " + x.statText() + ",," + itoa(x.n+m.lengthSkew), x.pdu}
	if x.stat == 0 {
		x.stat = 1
	}
	return ok(info...)
}

func (s *sess) cmgl(c atCmd, args []string) result {
	m := s.m
	if c.op == opTest {
		return ok("+CMGL: (0-4)")
	}
	want, okv := intArg(args, 0, 0, 0, 4)
	if !okv || c.op == opRead {
		return fail(cmsErr(cmsNotAllowed))
	}
	mem := m.st.mem[0]
	var info []string
	for i, x := range m.stores[mem] {
		if x == nil || (want != 4 && x.stat != want) {
			continue
		}
		info = append(info, "+CMGL: "+itoa(i+m.prof.IndexBase)+","+x.statText()+",,"+itoa(x.n+m.lengthSkew), x.pdu)
		if x.stat == 0 {
			x.stat = 1
		}
	}
	return ok(info...)
}

func (s *sess) cmgd(c atCmd, args []string) result {
	m := s.m
	if c.op == opTest {
		var idx []string
		for i, x := range m.stores[m.st.mem[0]] {
			if x != nil {
				idx = append(idx, itoa(i+m.prof.IndexBase))
			}
		}
		return ok("+CMGD: (" + strings.Join(idx, ",") + "),(0-4)")
	}
	if c.op != opSet || len(args) == 0 {
		return fail(cmsErr(cmsNotAllowed))
	}
	flag, okv := intArg(args, 1, 0, 0, 4)
	if !okv {
		return fail(cmsErr(cmsNotAllowed))
	}
	mem := m.st.mem[0]
	st := m.stores[mem]
	freed := false
	if flag == 0 {
		_, i, okIdx := m.slot(args[0])
		if !okIdx {
			return fail(cmsErr(cmsInvalidIndex))
		}
		freed = st[i] != nil
		st[i] = nil
	} else {
		// TS 27.005 §3.5.4 <delflag>: 1 read, 2 read+sent, 3 read+sent+
		// unsent, 4 all.
		for i, x := range st {
			if x == nil {
				continue
			}
			if flag == 4 || x.stat == 1 || (flag >= 2 && x.stat == 3) || (flag >= 3 && x.stat == 2) {
				st[i] = nil
				freed = true
			}
		}
	}
	if freed {
		// Memory available again: the ME tells the network (TS 24.011
		// RP-SMMA) and the SMSC retries what it holds.
		defer m.net.ready(m.msisdn)
	}
	return ok()
}
