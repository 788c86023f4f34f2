#!/usr/bin/env python3
# Emulates kernel_templates/matmul_frag.hip in numpy: the repack of the weights into
# fragment order, the activations' quantization into B-fragment order, the fragment loads,
# mma.sync m16n8k32 / m16n8k16 (s8) semantics per lane, and the warps' sums, against
# X · Wᵀ of the same int8 values and scales. It checks the index arithmetic, not the
# GPU: run it after changing the layouts (needs numpy; not part of the test suite).
import numpy as np, sys
rng = np.random.default_rng(1)
def run(N_ITEMS, K, T, SUB, FB, HAS_MIN, NTOK, TPB):
    G = K//32; CH = K//128; TILES=(N_ITEMS+7)//8; NO=NTOK//8; NS=128//SUB; WPC = 4 if FB==8 else 2
    NP = 2*N_ITEMS
    # weights: int8 q per element, scales per SUB, min per 32. pair_rows: item c -> (c, N_ITEMS+c) (swiglu-like)
    lo, hi = (0,16) if FB==4 else (-32,32)
    Wq = rng.integers(lo, hi, size=(NP, K)).astype(np.int64)
    Wd = rng.random((NP, K//SUB)).astype(np.float32)+0.1
    Wm = (rng.random((NP, G)).astype(np.float32) if HAS_MIN else np.zeros((NP,G),np.float32))
    Wreal = Wq * np.repeat(Wd, SUB, axis=1) - np.repeat(Wm, 32, axis=1)
    pair = lambda c: (c, N_ITEMS + c)
    X = rng.standard_normal((T, K)).astype(np.float32)
    # --- repack (byte buffer as dict of word arrays)
    WQV = TILES*G*512//(8//FB)
    wvals = np.zeros(WQV//4, np.uint32); wsd = np.zeros(TILES*CH*16*NS, np.float32); wsm = np.zeros(TILES*CH*16*4, np.float32)
    def i8words(r, unit, part):
        v = Wq[r, unit*32+part*8: unit*32+part*8+8]
        b = (v & 0xFF).astype(np.uint32)
        return [int(b[0] | b[1]<<8 | b[2]<<16 | b[3]<<24), int(b[4] | b[5]<<8 | b[6]<<16 | b[7]<<24)]
    for fr in range(TILES*16):
        for up in range(K//8):
            p, j, unit, part = fr//16, fr%16, up//4, up%4
            if FB==4 and unit%2==1: continue
            item = p*8 + j%8
            q=[[0,0],[0,0]]; d=[[0,0],[0,0]]; m=[0,0]
            if item < N_ITEMS:
                ra, rb = pair(item); r = ra if j<8 else rb
                for h in range(2 if FB==4 else 1):
                    u=unit+h
                    q[h] = i8words(r, u, part)
                    if part==0:
                        if SUB==32: d[h]=[Wd[r,u], Wd[r,u]]
                        else: d[h]=[Wd[r,2*u], Wd[r,2*u+1]]
                        m[h]=Wm[r,u]
            qq=(part%2)*2; reg=(part//2)*2 + j//8; lane=4*(j%8)+qq
            if FB==8:
                base=(((p*G+unit)*32+lane)*16)//4 + reg
                wvals[base]=q[0][0]; wvals[base+4]=q[0][1]
            else:
                base=(((p*(G//2)+unit//2)*32+lane)*16)//4 + reg
                wvals[base]=q[0][0] | (q[1][0]<<4); wvals[base+4]=q[0][1] | (q[1][1]<<4)
            if part==0:
                sdb=((p*CH+unit//4)*16+j)*NS; smb=((p*CH+unit//4)*16+j)*4
                for h in range(2 if FB==4 else 1):
                    u=unit+h; s=(u%4)*(32//SUB)
                    wsd[sdb+s]=d[h][0]
                    if SUB==16: wsd[sdb+s+1]=d[h][1]
                    if HAS_MIN: wsm[smb+u%4]=m[h]
    # --- quantize
    OCT=(T+7)//8
    xv=np.zeros(OCT*G*512//4, np.uint32); sd=np.zeros(OCT*CH*32, np.float32); ss=np.zeros(OCT*CH*32, np.float32)
    Xapprox=np.zeros_like(X, dtype=np.float64)
    for t in range(T):
        o,g=t//8,t%8
        for gr in range(G):
            v=X[t,gr*32:gr*32+32]; d=np.abs(v).max()/127; idv = 1/d if d>0 else 0
            qf=np.rint(v*idv); rf=np.rint((v*idv-qf)*254)
            Xapprox[t,gr*32:gr*32+32]=d*(qf+rf/254)
            s=(qf+rf/254).sum()
            for e0 in (0,8,16,24):
                half=e0//16; lane=4*g+(e0%16)//4
                def w(a): a=(a.astype(np.int64)&0xFF).astype(np.uint32); return int(a[0]|a[1]<<8|a[2]<<16|a[3]<<24)
                base=(((o*G+gr)*32+lane)*16)//4 + half
                xv[base]=w(qf[e0:e0+4]); xv[base+2]=w(rf[e0:e0+4]); xv[base+4]=w(qf[e0+4:e0+8]); xv[base+6]=w(rf[e0+4:e0+8])
            at=((o*CH+gr//4)*8+g)*4+gr%4
            sd[at]=d/254; ss[at]=d*s
    # --- matmul: emulate mma per lane semantic
    def bytes_s8(wd):
        return np.array([((wd>>(8*i))&0xFF) for i in range(4)], np.int64).astype(np.int8).astype(np.int64)
    def mma(A_regs, B_regs, k):  # A_regs[lane] list of regs, B_regs[lane]; returns C[lane][4]
        # build A (16 x k), B (k x 8)
        A=np.zeros((16,k),np.int64); B=np.zeros((k,8),np.int64)
        for l in range(32):
            g,q=l//4,l%4
            if k==32:
                A[g,4*q:4*q+4]=bytes_s8(A_regs[l][0]); A[g+8,4*q:4*q+4]=bytes_s8(A_regs[l][1])
                A[g,16+4*q:20+4*q]=bytes_s8(A_regs[l][2]); A[g+8,16+4*q:20+4*q]=bytes_s8(A_regs[l][3])
                B[4*q:4*q+4,g]=bytes_s8(B_regs[l][0]); B[16+4*q:20+4*q,g]=bytes_s8(B_regs[l][1])
            else:
                A[g,4*q:4*q+4]=bytes_s8(A_regs[l][0]); A[g+8,4*q:4*q+4]=bytes_s8(A_regs[l][1])
                B[4*q:4*q+4,g]=bytes_s8(B_regs[l][0])
        C=A@B
        return [[C[l//4,2*(l%4)],C[l//4,2*(l%4)+1],C[l//4+8,2*(l%4)],C[l//4+8,2*(l%4)+1]] for l in range(32)]
    out=np.full((T,NP), np.nan)
    nblk=(TILES+TPB-1)//TPB
    for bx in range(nblk):
      for by in range((T+NTOK-1)//NTOK):
        p0=bx*TPB; o0=by*NO
        tiles=[min(p0+i,TILES-1) for i in range(TPB)]
        acc=np.zeros((TPB,NO,32,4))
        for c in range(CH):
            for gi in range(4):
                for i in range(TPB):
                    a=[]
                    for l in range(32):
                        wb=((tiles[i]*(G*FB//8) + c*WPC + (gi if FB==8 else gi//2))*512 + l*16)//4
                        w4=[int(wvals[wb+k]) for k in range(4)]
                        if FB==8: a.append(w4)
                        else:
                            sh=4*(gi%2); a.append([(x>>sh)&0x0F0F0F0F for x in w4])
                    for o in range(NO):
                        oc=min(o0+o,(T-1)//8)
                        xs_=[]
                        for l in range(32):
                            xb=((oc*G+c*4+gi)*512 + l*16)//4
                            xs_.append([int(xv[xb+k]) for k in range(4)])
                        if SUB==32:
                            iq=mma(a,[[x[0],x[1]] for x in xs_],32); ir=mma(a,[[x[2],x[3]] for x in xs_],32)
                            v=[[[iq[l][e]*254+ir[l][e] for e in range(4)] for l in range(32)]]
                        else:
                            v=[]
                            for h in range(2):
                                iq=mma([[aa[2*h],aa[2*h+1]] for aa in a],[[x[h]] for x in xs_],16)
                                ir=mma([[aa[2*h],aa[2*h+1]] for aa in a],[[x[2+h]] for x in xs_],16)
                                v.append([[iq[l][e]*254+ir[l][e] for e in range(4)] for l in range(32)])
                        for l in range(32):
                            g,q=l//4,l%4
                            for e in range(4):
                                r,j=e//2,e%2
                                row=((tiles[i]*CH+c)*16+g+8*r)
                                at=((oc*CH+c)*8+2*q+j)*4
                                dx=sd[at+gi]
                                if SUB==32: s_=wsd[row*NS+gi]*v[0][l][e]
                                else: s_=wsd[row*NS+2*gi]*v[0][l][e]+wsd[row*NS+2*gi+1]*v[1][l][e]
                                a_=s_*dx+acc[i,o,l,e]
                                if HAS_MIN: a_ += -wsm[row*4+gi]*ss[at+gi]
                                acc[i,o,l,e]=a_
        for i in range(TPB):
            for o in range(NO):
                for l in range(32):
                    for j in range(2):
                        t=(o0+o)*8+2*(l%4)+j; item=(p0+i)*8+l//4
                        if t<T and item<N_ITEMS:
                            ra,rb=pair(item); out[t,ra]=acc[i,o,l,j]; out[t,rb]=acc[i,o,l,2+j]
    ref = Xapprox @ Wreal.T
    err = np.abs(out-ref).max()/np.abs(ref).max()
    print(f"N_ITEMS={N_ITEMS} K={K} T={T} SUB={SUB} FB={FB} MIN={HAS_MIN} NTOK={NTOK} TPB={TPB}: rel err {err:.2e}, nan {np.isnan(out).sum()}")
run(12, 256, 11, 32, 4, 1, 8, 2)
run(12, 256, 5, 16, 8, 0, 16, 1)
run(20, 128, 9, 32, 8, 1, 8, 4)
